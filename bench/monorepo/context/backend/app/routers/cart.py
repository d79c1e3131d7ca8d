from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..deps import Session, UserId
from ..models import CartLine, Item
from ..schemas import CartLineIn, CartLineOut

router = APIRouter(prefix="/cart", tags=["cart"])


@router.get("", response_model=list[CartLineOut])
async def get_cart(session: Session, user_id: UserId):
    stmt = select(CartLine).where(CartLine.user_id == user_id).options(selectinload(CartLine.item))
    return (await session.scalars(stmt)).all()


@router.post("", status_code=status.HTTP_204_NO_CONTENT)
async def add_line(body: CartLineIn, session: Session, user_id: UserId) -> None:
    item = await session.get(Item, body.item_id)
    if item is None or item.stock < body.quantity:
        raise HTTPException(status.HTTP_409_CONFLICT, "not in stock")
    session.add(CartLine(user_id=user_id, item_id=item.id, quantity=body.quantity))
    await session.commit()
