from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from ..deps import Session
from ..models import User
from ..schemas import UserIn
from ..services.auth import hash_password, issue_token, verify_password

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def register(body: UserIn, session: Session) -> dict[str, str]:
    session.add(User(email=body.email, password_hash=hash_password(body.password)))
    await session.commit()
    return {"status": "created"}


@router.post("/token")
async def login(body: UserIn, session: Session) -> dict[str, str]:
    user = await session.scalar(select(User).where(User.email == body.email))
    if user is None or not verify_password(body.password, user.password_hash):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bad credentials")
    return {"access_token": issue_token(user.id), "token_type": "bearer"}
