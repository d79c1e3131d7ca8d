import { Link } from 'react-router-dom'
import { useQuery } from '@tanstack/react-query'
import { getCart } from '../api/client.ts'

export default function Header() {
  const { data } = useQuery({ queryKey: ['cart'], queryFn: getCart })
  const count = data?.reduce((n, l) => n + l.quantity, 0) ?? 0
  return (
    <header>
      <Link to="/"><h1>Shop</h1></Link>
      <Link to="/cart">Cart ({count})</Link>
    </header>
  )
}
