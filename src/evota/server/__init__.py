"""The evota server: FastAPI routers over the services; `create_app` wires one home."""
