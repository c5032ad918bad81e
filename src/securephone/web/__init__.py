"""The web management interface: FastAPI app (HTML pages and the JSON API under /api/v1),
served by uvicorn inside the phone's own event loop. Entry points: ``app.create_app``,
``manager.PhoneManager`` (``securephone.run.run_phone`` runs it for ``securephone run``)."""
