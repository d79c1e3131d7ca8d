import { useQuery } from '@tanstack/react-query'
import { getCart } from '../api/client.ts'

export default function Cart() {
  const { data = [] } = useQuery({ queryKey: ['cart'], queryFn: getCart })
  const total = data.reduce((s, l) => s + l.item.price * l.quantity, 0)
  return (
    <section>
      <h2>Cart</h2>
      <ul>{data.map((l) => <li key={l.item.id}>{l.quantity} x {l.item.name}</li>)}</ul>
      <p className="price">Total: {total.toFixed(2)} EUR</p>
    </section>
  )
}
