import { Link } from 'react-router-dom'
import type { Item } from '../api/client.ts'

export default function ItemCard({ item }: { item: Item }) {
  return (
    <div className="card">
      <Link to={`/items/${item.id}`}><h3>{item.name}</h3></Link>
      <p>{item.description ?? 'No description'}</p>
      <p className="price">{item.price.toFixed(2)} EUR</p>
    </div>
  )
}
