import { useState } from 'react'
import { useQuery } from '@tanstack/react-query'
import { listItems } from '../api/client.ts'
import ItemCard from '../components/ItemCard.tsx'

export default function ItemList() {
  const [q, setQ] = useState('')
  const { data, isLoading, error } = useQuery({ queryKey: ['items', q], queryFn: () => listItems(q) })
  if (error) return <p>Could not load items: {String(error)}</p>
  return (
    <section>
      <input placeholder="Search" value={q} onChange={(e) => setQ(e.target.value)} />
      {isLoading ? <p>Loading...</p> : (
        <div className="grid">{data?.map((it) => <ItemCard key={it.id} item={it} />)}</div>
      )}
    </section>
  )
}
