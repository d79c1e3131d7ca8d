import { Link, Route, Routes } from 'react-router-dom'
import ItemList from './pages/ItemList.tsx'
import ItemDetail from './pages/ItemDetail.tsx'
import Cart from './pages/Cart.tsx'
import Header from './components/Header.tsx'

export default function App() {
  return (
    <div className="app">
      <Header />
      <main>
        <Routes>
          <Route path="/" element={<ItemList />} />
          <Route path="/items/:id" element={<ItemDetail />} />
          <Route path="/cart" element={<Cart />} />
          <Route path="*" element={<p>Not found. <Link to="/">Back to the shop</Link></p>} />
        </Routes>
      </main>
    </div>
  )
}
