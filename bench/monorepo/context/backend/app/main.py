from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from . import __version__
from .config import get_settings
from .db import engine
from .routers import cart, health, items, users


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await engine.dispose()


settings = get_settings()
app = FastAPI(title="shop", version=__version__, lifespan=lifespan)
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.cors_origins,
    allow_methods=["*"],
    allow_headers=["*"],
)
app.include_router(health.router)
app.include_router(items.router, prefix="/api")
app.include_router(cart.router, prefix="/api")
app.include_router(users.router, prefix="/api")
app.mount("/", StaticFiles(directory=settings.static_dir, html=True, check_dir=False), name="static")
