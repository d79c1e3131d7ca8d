from functools import lru_cache

from pydantic import Field, PostgresDsn
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: PostgresDsn = Field(default="postgresql+asyncpg://shop:shop@localhost/shop")
    secret_key: str = "change-me"
    cors_origins: list[str] = ["http://localhost:5173"]
    page_size: int = 50
    static_dir: str = "static"


@lru_cache
def get_settings() -> Settings:
    return Settings()
