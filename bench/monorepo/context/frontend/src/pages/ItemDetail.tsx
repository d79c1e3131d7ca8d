import { useParams } from 'react-router-dom'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { addToCart, getItem } from '../api/client.ts'

export default function ItemDetail() {
  const id = Number(useParams().id)
  const qc = useQueryClient()
  const { data: item } = useQuery({ queryKey: ['item', id], queryFn: () => getItem(id) })
  const add = useMutation({
    mutationFn: () => addToCart(id),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['cart'] }),
  })
  if (!item) return <p>Loading...</p>
  return (
    <article className="card">
      <h2>{item.name}</h2>
      <p>{item.description}</p>
      <p className="price">{item.price.toFixed(2)} EUR</p>
      <button disabled={item.stock === 0 || add.isPending} onClick={() => add.mutate()}>
        {item.stock === 0 ? 'Sold out' : 'Add to cart'}
      </button>
    </article>
  )
}
