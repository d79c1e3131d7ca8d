from pydantic import BaseModel, ConfigDict, EmailStr, Field, PositiveInt


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    price: float
    stock: int


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    price: float = Field(gt=0)
    stock: int = Field(ge=0, default=0)


class CartLineIn(BaseModel):
    item_id: int
    quantity: PositiveInt = 1


class CartLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item: ItemOut
    quantity: int


class UserIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=8)
