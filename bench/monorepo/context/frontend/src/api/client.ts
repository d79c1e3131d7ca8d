import axios from 'axios'
import { z } from 'zod'

export const Item = z.object({
  id: z.number(),
  name: z.string(),
  description: z.string().nullable(),
  price: z.number(),
  stock: z.number().int(),
})
export type Item = z.infer<typeof Item>

export const CartLine = z.object({ item: Item, quantity: z.number().int().positive() })
export type CartLine = z.infer<typeof CartLine>

const http = axios.create({ baseURL: '/api', timeout: 10_000 })

export async function listItems(q = ''): Promise<Item[]> {
  const r = await http.get('/items', { params: { q } })
  return z.array(Item).parse(r.data)
}

export async function getItem(id: number): Promise<Item> {
  const r = await http.get(`/items/${id}`)
  return Item.parse(r.data)
}

export async function getCart(): Promise<CartLine[]> {
  const r = await http.get('/cart')
  return z.array(CartLine).parse(r.data)
}

export async function addToCart(itemId: number, quantity = 1): Promise<void> {
  await http.post('/cart', { item_id: itemId, quantity })
}
