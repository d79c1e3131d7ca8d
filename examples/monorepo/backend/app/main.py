from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .routers import items

app = FastAPI(title="app")
app.include_router(items.router, prefix="/api")


@app.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


app.mount("/", StaticFiles(directory="static", html=True, check_dir=False), name="static")
