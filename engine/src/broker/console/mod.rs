//! The built-in web console, served on the metrics port next to `/metrics`.
//!
//! `GET /` is one self-contained HTML page (CSS and JS inline, [`PAGE`]; no framework, no build
//! step) that polls the JSON endpoints of [`api`]: the cluster and broker list, topics with their
//! queues' min/max offsets, consumer groups with lag per queue, message lookup by id or key, and
//! produce/consume TPS every second. The page puts every value into the DOM as text
//! (`textContent`), never as markup, so topic names, keys and bodies cannot inject HTML.
//!
//! Everything is answered on the state core with the broker's own admin requests; nothing here
//! runs on a request path.

mod api;
mod query_string;

use std::rc::Rc;

use serde_json::{json, Value};

use super::core::Core;
use crate::metrics::http::Response;
use query_string::{path, Query};

/// The console page.
pub(crate) const PAGE: &str = include_str!("page.html");

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

fn json_response(status: &'static str, v: &Value) -> Response {
    Response {
        status,
        content_type: JSON,
        body: v.to_string().into_bytes(),
    }
}

/// Answers a console request (any GET target but `/metrics`).
pub(crate) async fn answer(core: &Rc<Core>, target: &str) -> Response {
    let query = match Query::parse(target) {
        Ok(q) => q,
        Err(e) => return json_response("400 Bad Request", &json!({ "error": e.to_string() })),
    };
    let ok = |v: Value| json_response("200 OK", &v);
    match path(target) {
        "/" | "/index.html" => Response::ok(HTML, PAGE),
        "/api/cluster" => ok(api::cluster(core).await),
        "/api/topics" => ok(api::topics(core).await),
        "/api/groups" => ok(api::groups(core).await),
        "/api/tps" => ok(api::tps(core).await),
        "/api/message" => match api::message(core, &query).await {
            Ok(v) => ok(v),
            Err(e) => json_response("400 Bad Request", &json!({ "error": e.0 })),
        },
        _ => Response::text("404 Not Found", "not found; try / or /metrics\n"),
    }
}
