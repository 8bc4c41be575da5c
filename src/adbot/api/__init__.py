"""REST API: ``create_app()`` builds the FastAPI app; routes are thin calls into services."""
