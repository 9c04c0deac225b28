//! The admin session: one remoting client, the nameserver list and the request timeout, with the
//! lookups every command shares (routes, cluster membership, master addresses) and the mapping of
//! error responses to [`AdminError`].

use std::time::Duration;

use tern_engine::broker::admin_body::AdminBodyError;
use tern_net::body::{self, BodyError, ClusterInfo, TopicRouteData, MASTER_ID};
use tern_net::code::{request, response};
use tern_net::header::{CommandHeader, GetRouteInfoRequestHeader, HeaderFieldError};
use tern_net::transport::{ClientConfig, ClientError, RemotingClient};
use tern_net::RemotingCommand;

/// Why a command failed. Every variant's message is meant for the terminal as is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `-n` named no address.
    #[error("no nameserver address given (use -n host:port or NAMESRV_ADDR)")]
    NoNamesrv,
    /// No nameserver of the list answered.
    #[error("cannot reach any nameserver of {addrs}: {reason}")]
    NamesrvUnreachable {
        /// The list tried.
        addrs: String,
        /// The last failure.
        reason: String,
    },
    /// A broker (or a nameserver addressed directly) did not answer.
    #[error("{0}")]
    Peer(#[source] ClientError),
    /// The peer answered REQUEST_CODE_NOT_SUPPORTED.
    #[error("{addr} does not support request {code} ({name}) yet")]
    NotSupported {
        /// The peer.
        addr: String,
        /// The request code.
        code: i32,
        /// Its RocketMQ name.
        name: &'static str,
    },
    /// The nameserver knows no route for the topic.
    #[error("topic {0} does not exist (no route on the nameserver)")]
    TopicNotFound(String),
    /// The peer answered with an error code.
    #[error("{addr} refused {request}: {code_name} ({code}){}", remark_suffix(.remark))]
    Refused {
        /// The peer.
        addr: String,
        /// The request's RocketMQ name.
        request: &'static str,
        /// The response code.
        code: i32,
        /// Its RocketMQ name.
        code_name: &'static str,
        /// The peer's explanation.
        remark: Option<String>,
    },
    /// A response body was not what its request promises.
    #[error("{addr} sent a {source}")]
    Body {
        /// The peer.
        addr: String,
        /// The decoding failure.
        source: BodyError,
    },
    /// A response header lacked a field or had a bad one.
    #[error("{addr} sent a bad response header: {source}")]
    Header {
        /// The peer.
        addr: String,
        /// The field problem.
        source: HeaderFieldError,
    },
    /// Something named on the command line does not exist (cluster, broker, queue ...).
    #[error("{0}")]
    NotFound(String),
    /// A command-line value is unusable (bad message id, ...).
    #[error("{0}")]
    Invalid(String),
    /// The async runtime could not start.
    #[error(transparent)]
    Runtime(#[from] tern_runtime::RuntimeError),
}

fn remark_suffix(remark: &Option<String>) -> String {
    match remark {
        Some(r) if !r.is_empty() => format!(": {r}"),
        _ => String::new(),
    }
}

/// One CLI invocation's connection state. Lives on one executor.
pub struct Admin {
    client: RemotingClient,
    namesrvs: Vec<String>,
    timeout: Duration,
}

impl Admin {
    /// A session for a `;`-separated nameserver list; fails when the list is empty.
    pub fn new(namesrv_list: &str, timeout: Duration) -> Result<Self, AdminError> {
        let namesrvs: Vec<String> = namesrv_list
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if namesrvs.is_empty() {
            return Err(AdminError::NoNamesrv);
        }
        let config = ClientConfig {
            connect_timeout: timeout.min(ClientConfig::default().connect_timeout),
            ..ClientConfig::default()
        };
        Ok(Admin {
            client: RemotingClient::new(config),
            namesrvs,
            timeout,
        })
    }

    /// Sends `cmd` to the first nameserver that answers (in list order) and returns its response
    /// whatever its code.
    pub async fn namesrv(&self, cmd: RemotingCommand) -> Result<RemotingCommand, AdminError> {
        let mut last = String::new();
        for addr in &self.namesrvs {
            match self.client.invoke(addr, cmd.clone(), self.timeout).await {
                Ok(rsp) => return Ok(rsp),
                Err(e) => last = e.to_string(),
            }
        }
        Err(AdminError::NamesrvUnreachable {
            addrs: self.namesrvs.join(";"),
            reason: last,
        })
    }

    /// Like [`Admin::namesrv`], failing unless the response is SUCCESS.
    pub async fn namesrv_ok(&self, cmd: RemotingCommand) -> Result<RemotingCommand, AdminError> {
        let code = cmd.code;
        let rsp = self.namesrv(cmd).await?;
        check(&self.namesrvs.join(";"), code, rsp)
    }

    /// The nameserver addresses, in the order given.
    pub fn namesrv_addrs(&self) -> &[String] {
        &self.namesrvs
    }

    /// Sends `cmd` to the peer (broker, usually) at `addr` and returns its response whatever its
    /// code.
    pub async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, AdminError> {
        self.client
            .invoke(addr, cmd, self.timeout)
            .await
            .map_err(AdminError::Peer)
    }

    /// Like [`Admin::invoke`], failing unless the response is SUCCESS.
    pub async fn invoke_ok(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, AdminError> {
        let code = cmd.code;
        let rsp = self.invoke(addr, cmd).await?;
        check(addr, code, rsp)
    }

    /// The topic's route; [`AdminError::TopicNotFound`] when the nameserver has none.
    pub async fn route(&self, topic: &str) -> Result<TopicRouteData, AdminError> {
        let cmd = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_header(
            &GetRouteInfoRequestHeader {
                topic: topic.to_string(),
                accept_standard_json_only: Some(true),
            },
        );
        let rsp = self.namesrv(cmd).await?;
        if rsp.code == response::TOPIC_NOT_EXIST {
            return Err(AdminError::TopicNotFound(topic.to_string()));
        }
        let rsp = check(
            &self.namesrvs.join(";"),
            request::GET_ROUTEINFO_BY_TOPIC,
            rsp,
        )?;
        self.decode_namesrv_body(&rsp)
    }

    /// The clusters and brokers the nameserver knows.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, AdminError> {
        let rsp = self
            .namesrv_ok(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO))
            .await?;
        self.decode_namesrv_body(&rsp)
    }

    /// `(brokerName, master address)` of every broker of `cluster` (of all clusters when `None`),
    /// sorted by name; [`AdminError::NotFound`] for an unknown cluster.
    pub async fn masters(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<(String, String)>, AdminError> {
        let info = self.cluster_info().await?;
        let names: Vec<&String> = match cluster {
            Some(c) => info
                .cluster_addr_table
                .get(c)
                .ok_or_else(|| AdminError::NotFound(format!("cluster {c} is not known")))?
                .iter()
                .collect(),
            None => info.broker_addr_table.keys().collect(),
        };
        let mut out: Vec<(String, String)> = names
            .into_iter()
            .filter_map(|name| {
                let data = info.broker_addr_table.get(name)?;
                let addr = data.broker_addrs.get(&MASTER_ID)?;
                Some((name.clone(), addr.clone()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Broker addresses from `-b addr` or `-c cluster` (exactly one given, checked by clap).
    pub async fn targets(
        &self,
        broker_addr: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<Vec<String>, AdminError> {
        match broker_addr {
            Some(addr) => Ok(vec![addr.to_string()]),
            None => {
                let masters = self.masters(cluster).await?;
                if masters.is_empty() {
                    return Err(AdminError::NotFound(
                        "no master broker is registered".into(),
                    ));
                }
                Ok(masters.into_iter().map(|(_, a)| a).collect())
            }
        }
    }

    fn decode_namesrv_body<T: serde::de::DeserializeOwned>(
        &self,
        rsp: &RemotingCommand,
    ) -> Result<T, AdminError> {
        decode_body(&self.namesrvs.join(";"), rsp)
    }
}

/// Decodes a JSON response body from `addr`.
pub fn decode_body<T: serde::de::DeserializeOwned>(
    addr: &str,
    rsp: &RemotingCommand,
) -> Result<T, AdminError> {
    body::decode(&rsp.body).map_err(|source| AdminError::Body {
        addr: addr.to_string(),
        source,
    })
}

/// The error for a response body from `addr` that is not the `what` it should be.
pub fn bad_body(addr: &str, what: &'static str, reason: impl ToString) -> AdminError {
    AdminError::Body {
        addr: addr.to_string(),
        source: BodyError {
            what,
            reason: reason.to_string(),
        },
    }
}

/// The error for a fastjson admin body (keyed by message queue) from `addr` that is not `what`.
pub fn bad_admin_body(addr: &str, what: &'static str, e: AdminBodyError) -> AdminError {
    bad_body(addr, what, format!("at byte {}: {}", e.at, e.reason))
}

/// Decodes a typed response header from `addr`.
pub fn decode_header<H: CommandHeader>(addr: &str, rsp: &RemotingCommand) -> Result<H, AdminError> {
    rsp.decode_header().map_err(|source| AdminError::Header {
        addr: addr.to_string(),
        source,
    })
}

/// `rsp` when it is SUCCESS, else [`refusal`].
pub fn check(
    addr: &str,
    request_code: i32,
    rsp: RemotingCommand,
) -> Result<RemotingCommand, AdminError> {
    if rsp.code == response::SUCCESS {
        Ok(rsp)
    } else {
        Err(refusal(addr, request_code, rsp))
    }
}

/// The error for a non-SUCCESS response to request `request_code` sent to `addr`:
/// [`AdminError::NotSupported`] for REQUEST_CODE_NOT_SUPPORTED, else [`AdminError::Refused`].
pub fn refusal(addr: &str, request_code: i32, rsp: RemotingCommand) -> AdminError {
    let request_name = request::name(request_code).unwrap_or("UNKNOWN_REQUEST");
    if rsp.code == response::REQUEST_CODE_NOT_SUPPORTED {
        return AdminError::NotSupported {
            addr: addr.to_string(),
            code: request_code,
            name: request_name,
        };
    }
    AdminError::Refused {
        addr: addr.to_string(),
        request: request_name,
        code: rsp.code,
        code_name: response::name(rsp.code).unwrap_or("UNKNOWN"),
        remark: rsp.remark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsp(code: i32, remark: Option<&str>) -> RemotingCommand {
        let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO);
        RemotingCommand::response_to(&req, code, remark.map(str::to_string))
    }

    #[test]
    fn unsupported_requests_name_the_request_code() {
        let err = check("b:1", request::GET_CONSUME_STATS, rsp(3, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "b:1 does not support request 208 (GET_CONSUME_STATS) yet"
        );
    }

    #[test]
    fn refusals_carry_code_name_and_remark() {
        let err = check("b:1", request::SEND_MESSAGE, rsp(17, Some("no such topic"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "b:1 refused SEND_MESSAGE: TOPIC_NOT_EXIST (17): no such topic"
        );
        assert!(check("b:1", request::SEND_MESSAGE, rsp(0, None)).is_ok());
    }

    #[test]
    fn an_empty_nameserver_list_is_an_error() {
        assert!(matches!(
            Admin::new(" ; ", Duration::from_secs(1)),
            Err(AdminError::NoNamesrv)
        ));
    }
}
