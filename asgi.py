"""Entry point of the web process: `python asgi.py` serves the ASGI app (backend/web) with uvicorn at $PORT."""

from backend.web.server import main

if __name__ == "__main__":
    main()
