import { useEffect, useState } from "react";

export default function App() {
  const [status, setStatus] = useState("...");
  useEffect(() => {
    fetch("/api/health")
      .then((r) => r.json())
      .then((j) => setStatus(j.status));
  }, []);
  return <h1>backend: {status}</h1>;
}
