// Bench floor "noop": what the runtime costs for a request that does nothing. A small JSON
// 200, served behind the same assets routing as the Rust Worker (benches/miniflare.mjs gives
// it the same assets options), so the comparison with GET /api/ping leaves only our code.
export default {
  async fetch() {
    return Response.json({ status: "ok" });
  },
};
