"""The provisioning REST API: the framework (``framework``), its resources (one module each) and
the aiohttp application that serves them (``app.create_api_app``)."""
