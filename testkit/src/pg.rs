//! PostgreSQL addresses for the tests that need a server (`DATABASE_URL`, trust auth; each test
//! creates its own database there). Only strings: the tests bring their own driver.

/// `DATABASE_URL`; panics (a test that needs PostgreSQL fails loudly) when it is not a
/// `postgres://` URL.
pub fn database_url() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    assert!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "DATABASE_URL must point at a PostgreSQL server the tests may create databases on, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (got {url:?})"
    );
    url
}

/// `url` with its database name replaced by `name` (its query kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `host:port` of `DATABASE_URL` (default `127.0.0.1:5432`).
pub fn pg_target() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let rest = url.split("://").nth(1).unwrap_or("");
    let host = rest.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    if host.is_empty() {
        "127.0.0.1:5432".to_owned()
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "t1"), "postgres://u@h:1/t1");
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "t1"),
            "postgres://u@h:1/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "t1"), "postgres://u@h:1/t1");
    }
}
