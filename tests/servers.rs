//! Local servers for the probe tests, all on 127.0.0.1 or a unix socket in
//! a temp dir: a tiny HTTP/1.1 server (plain or TLS with certificates made
//! here by rcgen), a JSON socket server, and a TCP port that never accepts.
//!
//! Each server runs on its own tokio runtime, which stops when the server
//! value drops, so a test leaves nothing running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener};
use tokio::runtime::Runtime;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Bytes of `/huge`'s body; its last bytes are `THE-END`.
pub(crate) const HUGE: usize = 3 * 1024 * 1024;

/// What an HTTP server saw.
#[derive(Default)]
pub(crate) struct Counts {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    /// Requests that asked to close the connection.
    pub closing: AtomicUsize,
}

/// An HTTP or HTTPS server on 127.0.0.1.
pub(crate) struct HttpServer {
    pub port: u16,
    pub counts: Arc<Counts>,
    _runtime: Runtime,
}

impl HttpServer {
    /// A plain HTTP server.
    pub(crate) fn start() -> HttpServer {
        HttpServer::serve(None)
    }

    /// An HTTPS server with this certificate chain.
    pub(crate) fn start_tls(certificate: &ServerCertificate) -> HttpServer {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificate.key.clone())),
            )
            .unwrap();
        HttpServer::serve(Some(TlsAcceptor::from(Arc::new(config))))
    }

    fn serve(tls: Option<TlsAcceptor>) -> HttpServer {
        let runtime = Runtime::new().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let counts = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => connection(stream, &counts).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                connection(stream, &counts).await;
                            }
                        }
                    }
                });
            }
        });
        HttpServer {
            port,
            counts,
            _runtime: runtime,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn count(&self, which: fn(&Counts) -> &AtomicUsize) -> usize {
        which(&self.counts).load(Ordering::SeqCst)
    }
}

/// Serves requests on one connection until the client or a response closes it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, counts: &Counts) {
    let mut buffer = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                buffer.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        counts.requests.fetch_add(1, Ordering::SeqCst);
        let mut lines = head.lines();
        let request = lines.next().unwrap_or_default().to_string();
        let mut parts = request.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let close = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        if close {
            counts.closing.fetch_add(1, Ordering::SeqCst);
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let route = path.split('?').next().unwrap_or_default();
        let (status, extra, body): (&str, String, Vec<u8>) = match route {
            "/ok" => ("200 OK", String::new(), b"all ok here".to_vec()),
            "/fail" => ("503 Service Unavailable", String::new(), b"down".to_vec()),
            "/hang" => {
                tokio::time::sleep(Duration::from_hours(1)).await;
                return;
            }
            "/redirect" => ("302 Found", "Location: /ok\r\n".into(), b"moved".to_vec()),
            "/redirect-twice" => (
                "301 Moved Permanently",
                "Location: /redirect\r\n".into(),
                Vec::new(),
            ),
            "/loop" => ("302 Found", "Location: /loop\r\n".into(), Vec::new()),
            "/huge" => {
                let mut body = vec![b'x'; HUGE];
                body[HUGE - 7..].copy_from_slice(b"THE-END");
                ("200 OK", String::new(), body)
            }
            "/echo-host" => ("200 OK", String::new(), header("host").into_bytes()),
            _ => ("404 Not Found", String::new(), b"no such page".to_vec()),
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if method != "HEAD" {
            response.extend_from_slice(&body);
        }
        if stream.write_all(&response).await.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// A server certificate for 127.0.0.1 and the CA that signed it.
pub(crate) struct ServerCertificate {
    pub der: CertificateDer<'static>,
    pub key: Vec<u8>,
    /// The CA certificate in PEM, for `SSL_CERT_FILE`.
    pub ca_pem: String,
}

/// A CA and a server certificate for 127.0.0.1 that expires `days` from now
/// (negative: expired), valid since 30 days before.
pub(crate) fn certificate(days: i64) -> ServerCertificate {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cimaa test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(60);
    ca.not_after = now + time::Duration::days(365);
    let ca_certificate = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.not_before = now - time::Duration::days(30);
    params.not_after = now + time::Duration::days(days) + time::Duration::hours(1);
    let certificate = params.signed_by(&key, &issuer).unwrap();
    ServerCertificate {
        der: certificate.der().clone(),
        key: key.serialize_der(),
        ca_pem: ca_certificate.pem(),
    }
}

/// A unix (or TCP) socket server that sends `reply` to every client and closes.
pub(crate) struct SocketServer {
    pub path: PathBuf,
    pub port: u16,
    _runtime: Runtime,
}

impl SocketServer {
    pub(crate) fn start(directory: &Path, reply: Vec<u8>) -> SocketServer {
        let runtime = Runtime::new().unwrap();
        let path = directory.join("monitor.sock");
        let _guard = runtime.enter();
        let unix = UnixListener::bind(&path).unwrap();
        let tcp = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let reply = Arc::new(reply);
        let unix_reply = reply.clone();
        runtime.spawn(async move {
            while let Ok((mut stream, _)) = unix.accept().await {
                let reply = unix_reply.clone();
                tokio::spawn(async move {
                    let _ = stream.write_all(&reply).await;
                });
            }
        });
        runtime.spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let _ = stream.write_all(&reply).await;
                });
            }
        });
        SocketServer {
            path,
            port,
            _runtime: runtime,
        }
    }
}

/// A TCP port whose accept queue is full, so connecting to it hangs.
pub(crate) struct Stalled {
    pub port: u16,
    // Sockets drop before their runtime.
    _held: Vec<TcpStream>,
    _listener: TcpListener,
    _runtime: Runtime,
}

impl Stalled {
    pub(crate) fn start() -> Stalled {
        let runtime = Runtime::new().unwrap();
        let (listener, port, held) = runtime.block_on(async {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(0).unwrap();
            let port = listener.local_addr().unwrap().port();
            // Fill the queue; connections past it wait for a SYN-ACK that
            // does not come until the listener accepts (it never does).
            let mut held = Vec::new();
            for _ in 0..4 {
                let connect = TcpStream::connect(("127.0.0.1", port));
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_millis(200), connect).await
                {
                    held.push(stream);
                }
            }
            (listener, port, held)
        });
        Stalled {
            port,
            _runtime: runtime,
            _held: held,
            _listener: listener,
        }
    }
}
