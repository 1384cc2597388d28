//! A blocking connection to one broker: one request at a time, with time-outs.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes};

use super::codec::{self, Versions};
use super::error::{Error, Result};

/// A connected, version-negotiated broker connection. Requests are sent one at a time and
/// each waits for its response (`acks=0` produce excepted, see [`Connection::send_only`]).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: String,
    client_id: String,
    correlation_id: i32,
    versions: Versions,
    frame_bytes_max: usize,
}

impl Connection {
    /// Connects to `addr` (`host:port`), waiting at most `timeout` for the TCP handshake and
    /// for each response afterwards, and negotiates API versions.
    pub fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let fail = |reason: String| Error::Connect { addr: addr.to_string(), reason };
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| fail(e.to_string()))?.collect();
        let mut last = "no address".to_string();
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| fail(last))?;
        let io = |e: std::io::Error| fail(e.to_string());
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = Connection {
            stream,
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            correlation_id: 0,
            versions: Versions::default(),
            frame_bytes_max: codec::FRAME_BYTES_MAX,
        };
        conn.versions = Versions::negotiate(&conn.api_versions()?);
        Ok(conn)
    }

    /// ApiVersions v3, falling back to v0 when the broker says it does not know v3.
    fn api_versions(&mut self) -> Result<ApiVersionsResponse> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("odradek-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = self.send_version(3, &req).map_err(|e| self.as_connect_error(e))?;
        if resp.error_code == 35 {
            return self.send_version(0, &req).map_err(|e| self.as_connect_error(e));
        }
        Error::check(resp.error_code, None, || format!("ApiVersions with {}", self.addr))?;
        Ok(resp)
    }

    fn as_connect_error(&self, e: Error) -> Error {
        match e {
            Error::Io { source, .. } => {
                Error::Connect { addr: self.addr.clone(), reason: format!("no Kafka answer to ApiVersions ({source})") }
            }
            other => other,
        }
    }

    /// The `host:port` this connection was made to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The negotiated versions.
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The negotiated version for `key`, or [`Error::Unsupported`].
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        self.versions.get(key as i16)
    }

    /// The socket and the negotiated versions, for an I/O loop of one's own (e.g. pipelining
    /// [`codec::encode_request`] frames). The next correlation id to use is returned too.
    pub fn into_parts(self) -> (TcpStream, Versions, i32) {
        (self.stream, self.versions, self.correlation_id.wrapping_add(1))
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub fn send<R: Request>(&mut self, req: &R) -> Result<(i16, R::Response)> {
        let version = self.versions.get(R::KEY)?;
        Ok((version, self.send_version(version, req)?))
    }

    /// Sends `req` at the negotiated version without waiting for a response (the broker
    /// sends none for Produce with `acks=0`).
    pub fn send_only<R: Request>(&mut self, req: &R) -> Result<i16> {
        let version = self.versions.get(R::KEY)?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = codec::encode_request(version, self.correlation_id, Some(&self.client_id), req)?;
        self.write(&frame)?;
        Ok(version)
    }

    /// Sends `req` at an explicit version and waits for its response.
    pub fn send_version<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        let frame = codec::encode_request(version, id, Some(&self.client_id), req)?;
        self.write(&frame)?;
        let body = codec::read_frame(&mut self.stream, self.frame_bytes_max).map_err(|e| self.io(e))?;
        let (got, resp) = codec::decode_response::<R::Response>(version, body).map_err(|e| match e {
            Error::Protocol { reason, .. } => Error::Protocol {
                addr: self.addr.clone(),
                reason: format!("{} v{version} response: {reason}", codec::api_name(R::KEY)),
            },
            other => other,
        })?;
        if got != id {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                reason: format!("response correlation id {got}, expected {id}"),
            });
        }
        Ok(resp)
    }

    fn write(&mut self, frame: &[u8]) -> Result<()> {
        self.stream.write_all(frame).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io { addr: self.addr.clone(), source }
    }
}
