#!/usr/bin/env bash
# Grants or revokes the admin role of an existing account by running SQL through
# `wrangler d1 execute` — so only whoever holds the Cloudflare credentials (or the local
# database) can make an admin. There is no default admin and no first-signup rule.
#
#   npm run admin -- grant <username>             local database (.wrangler/state)
#   npm run admin -- grant <username> --remote    the production database
#   npm run admin -- revoke <username> [--remote]
#   DATABASE=postgres DATABASE_URL=postgres://... npm run admin -- grant <username>
#                                                 the PostgreSQL database (admin-postgres.mjs)
#
# Options: --persist-to DIR (local state elsewhere, as `wrangler dev --persist-to`),
# --print-sql (print the SQL and stop). Exit status: 0 done (or nothing to do), 1 no such
# account (or wrangler failed), 2 usage error, 3 refused: the account is the last active
# admin (the database's rule, migrations/0004_last_admin.sql, binds this script too).
set -euo pipefail
export LC_ALL=C
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/node_modules/.bin:$PATH"

usage() {
    cat >&2 <<'EOF'
usage: npm run admin -- <grant|revoke> <username> [--remote | --local] [--persist-to DIR] [--print-sql]
EOF
    exit 2
}

action=""
username=""
where="--local"
print_sql=0
persist=()
while [ $# -gt 0 ]; do
    case "$1" in
        grant | revoke)
            [ -z "$action" ] || usage
            action="$1"
            ;;
        --remote | --local) where="$1" ;;
        --print-sql) print_sql=1 ;;
        --persist-to)
            [ $# -ge 2 ] || usage
            persist=(--persist-to "$2")
            shift
            ;;
        -h | --help) usage ;;
        -*)
            echo "admin: unknown option $1" >&2
            usage
            ;;
        *)
            [ -z "$username" ] || usage
            username="$1"
            ;;
    esac
    shift
done
[ -n "$action" ] && [ -n "$username" ] || usage
if [ "$where" = "--remote" ] && [ ${#persist[@]} -gt 0 ]; then
    echo "admin: --persist-to is for the local database only" >&2
    exit 2
fi

# The username goes into SQL, so it must be exactly what signup accepts: 3-42 ASCII
# letters, digits or underscores (no quote can get through). Stored lower-case.
if ! [[ "$username" =~ ^[A-Za-z0-9_]{3,42}$ ]]; then
    echo "admin: '$username' is not a username (3-42 letters, digits or underscores)" >&2
    exit 2
fi
username="$(printf '%s' "$username" | tr 'A-Z' 'a-z')"

if [ "${DATABASE:-d1}" = postgres ]; then
    print=()
    [ "$print_sql" = 1 ] && print=(--print-sql)
    exec node "$ROOT/scripts/admin-postgres.mjs" "$action" "$username" "${print[@]}"
fi

now="CAST(strftime('%s', 'now') AS INTEGER)"
account="SELECT id FROM users WHERE username = '$username'"
state="SELECT (SELECT COUNT(*) FROM users WHERE username = '$username') AS found, \
(SELECT COUNT(*) FROM user_roles WHERE role = 'admin' AND user_id IN ($account)) AS admin, \
(SELECT COUNT(*) FROM user_roles WHERE role = 'admin') AS admins;"
if [ "$action" = grant ]; then
    change="INSERT INTO audit_log (occurred_at, action, target_id, details)
  SELECT $now, 'user.role_granted', id, '{\"role\":\"admin\",\"via\":\"command_line\"}' FROM users
  WHERE username = '$username' AND id NOT IN (SELECT user_id FROM user_roles WHERE role = 'admin');
INSERT OR IGNORE INTO user_roles (user_id, role, granted_at)
  SELECT id, 'admin', $now FROM users WHERE username = '$username';"
else
    change="INSERT INTO audit_log (occurred_at, action, target_id, details)
  SELECT $now, 'user.role_revoked', id, '{\"role\":\"admin\",\"via\":\"command_line\"}' FROM users
  WHERE username = '$username' AND id IN (SELECT user_id FROM user_roles WHERE role = 'admin');
DELETE FROM user_roles WHERE role = 'admin' AND user_id IN ($account);"
fi
sql="$state
$change
$state"

if [ "$print_sql" = 1 ]; then
    printf '%s\n' "$sql"
    exit 0
fi

output="$(CI=true wrangler d1 execute DB "$where" "${persist[@]}" --yes --json --command "$sql" 2>&1)" || {
    if printf '%s' "$output" | grep -q 'edge_auth:last_admin'; then
        label="local"
        [ "$where" = "--remote" ] && label="remote"
        echo "admin: $username is the last active admin; grant admin to another account first; nothing changed ($label)" >&2
        exit 3
    fi
    printf '%s\n' "$output" >&2
    echo "admin: wrangler d1 execute failed" >&2
    exit 1
}

# The first and last statements read the account's state before and after.
ADMIN_OUTPUT="$output" ADMIN_ACTION="$action" ADMIN_USER="$username" ADMIN_WHERE="$where" node -e '
const results = JSON.parse(process.env.ADMIN_OUTPUT);
const before = results[0].results[0];
const after = results[results.length - 1].results[0];
const user = process.env.ADMIN_USER;
const where = process.env.ADMIN_WHERE === "--remote" ? "remote" : "local";
if (!after.found) {
  console.error(`admin: no account named ${user} in the ${where} database; nothing changed`);
  process.exit(1);
}
const changed = before.admin !== after.admin;
if (process.env.ADMIN_ACTION === "grant") {
  console.log(changed ? `${user} is now an admin (${where})` : `${user} was already an admin; nothing changed (${where})`);
} else {
  console.log(changed ? `${user} is no longer an admin (${where})` : `${user} was not an admin; nothing changed (${where})`);
}
'
