// Bench floor "users/me": the storage calls of GET /api/v1/users/me and nothing else. One D1
// point read (the Rust Worker's own users table, by primary key, through the same database)
// and one KV get (a revocation-list miss, as for a live token), concurrently as
// src/http/auth.rs does them, answered as JSON. No token check: that is our cost, not the
// runtime's. The user id comes in the query string (`?id=`).
export default {
  async fetch(request, env) {
    const id = new URL(request.url).searchParams.get("id");
    const [user, revoked] = await Promise.all([
      env.DB.prepare("SELECT id, username, email, email_verified, created_at, updated_at FROM users WHERE id = ?1")
        .bind(id)
        .first(),
      env.KV.get("revoked:bench-floor"),
    ]);
    if (!user || revoked !== null) return Response.json({ error: "not found" }, { status: 404 });
    return Response.json(user);
  },
};
