from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from ..config import get_settings
from ..deps import Session, UserId
from ..models import Item
from ..schemas import ItemIn, ItemOut

router = APIRouter(prefix="/items", tags=["items"])


@router.get("", response_model=list[ItemOut])
async def list_items(session: Session, q: str = "", offset: int = Query(0, ge=0)):
    stmt = select(Item).order_by(Item.name).offset(offset).limit(get_settings().page_size)
    if q:
        stmt = stmt.where(Item.name.ilike(f"%{q}%"))
    return (await session.scalars(stmt)).all()


@router.get("/{item_id}", response_model=ItemOut)
async def get_item(item_id: int, session: Session):
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    return item


@router.post("", response_model=ItemOut, status_code=status.HTTP_201_CREATED)
async def create_item(body: ItemIn, session: Session, _user: UserId):
    item = Item(**body.model_dump())
    session.add(item)
    await session.commit()
    await session.refresh(item)
    return item
