//! Per-shard serving: every shard binds the listener (SO_REUSEPORT), accepts connections and
//! serves them on its own core; partition work travels to owners as typed messages.
//!
//! A connection is two tasks on the accepting core: a reader that frames, decodes and starts
//! each request (at most `requests_in_flight_max` at a time), and a writer that awaits the
//! started requests in arrival order and writes their responses, so responses leave in request
//! order while requests are pipelined.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use engine::io::dma::DmaStorage;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use replication::{CoordinatorService, PartitionShard, ServiceFactory, ShardServices};

use crate::config::BrokerConfig;
use crate::frame::{self, FrameError};
use crate::handlers::groups::GroupCall;
use crate::topics::Topics;

/// What a shard's door carries to the broker's services on that shard.
pub enum Call {
    /// A request for a group this shard coordinates.
    Group(Box<GroupCall>),
    /// A topic's new state for this shard's metadata view.
    Topic(crate::view::TopicChange),
    /// A request for a transactional id this shard coordinates.
    Txn(Box<crate::coordinator::txn::TxnCall>),
    /// A transaction marker was written to a `__consumer_offsets` partition this shard owns:
    /// the group coordinator commits or drops the producer's pending offsets there.
    TxnOffsetsEnded { partition: i32, producer_id: i64, commit: bool, reply: flume::Sender<()> },
}
/// Every shard's door, as the broker's handlers use it.
pub type Router = replication::Router<Call>;
/// What one shard asks of another, through its door.
pub type Request = replication::ShardRequest<Call>;

/// How often each shard looks after its partitions' producer state: expiry, and a snapshot for
/// each log that rolled or grew enough since its last one (so a crash leaves at most about this
/// long of writes to reread at the next start, or `PRODUCER_SNAPSHOT_BYTES`).
pub const PRODUCER_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What every shard shares: settings, the topic registry, the connection count.
///
/// Lives on: every core (`Send + Sync`).
pub struct Broker {
    pub config: BrokerConfig,
    /// The topic registry: the truth every shard's view follows (see [`crate::view`]).
    pub topics: Arc<Topics>,
    connections: AtomicUsize,
    /// Every shard's listening socket, so shutdown can stop accepting first.
    listener_fds: Mutex<Vec<std::os::unix::io::RawFd>>,
    stopping: std::sync::atomic::AtomicBool,
    pub producer_ids: crate::handlers::init_producer_id::ProducerIds,
    /// How many shards run a log-cleaner pass now (`log.cleaner.threads` bounds it).
    pub cleaner_slots: crate::handlers::cleaner::CleanerSlots,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> std::io::Result<Arc<Self>> {
        let topics = Arc::new(Topics::load(&config.data_dir)?);
        let producer_ids = crate::handlers::init_producer_id::ProducerIds::load(&config.data_dir)?;
        Ok(Arc::new(Self {
            config,
            topics,
            connections: AtomicUsize::new(0),
            listener_fds: Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            producer_ids,
            cleaner_slots: Default::default(),
        }))
    }

    /// Stops accepting connections on every shard (before `Node::shutdown`). Shutting the
    /// listening sockets down, rather than only dropping them, matters: an io_uring accept in
    /// flight keeps a socket alive until the ring is torn down after the process exits, and a
    /// broker restarted meanwhile would share the port with it (SO_REUSEPORT).
    pub fn stop_listening(&self) {
        self.stopping.store(true, Ordering::Release);
        for fd in self.listener_fds.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            // SAFETY: `fd` is a listening socket the accept loop owns; it stays open until the
            // shard stops, which comes after this call. shutdown() has no memory effects.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// The per-shard services to hand to `replication::Node::start`.
    pub fn service(self: &Arc<Self>) -> ServiceFactory<Call> {
        let broker = self.clone();
        Arc::new(move |shard: Rc<PartitionShard<DmaStorage>>, router: Router| {
            let ctx = shard_ctx(broker.clone(), shard, router);
            let coordinator: Rc<dyn CoordinatorService<Call>> = Rc::new(Groups { ctx: ctx.clone() });
            ShardServices { coordinator: Some(coordinator), main: Box::pin(run_shard(ctx)) }
        })
    }
}

/// One shard's view: the shared broker plus this core's partitions and the router to all
/// shards.
///
/// Lives on: one core.
pub struct ShardCtx {
    pub broker: Arc<Broker>,
    pub shard: Rc<PartitionShard<DmaStorage>>,
    pub router: Router,
    /// Request bytes this shard may hold (`request_bytes_in_flight_max`).
    request_bytes: Rc<glommio::sync::Semaphore>,
    pub fetch_sessions: crate::handlers::fetch::FetchSessions,
    /// The groups this shard coordinates (see [`crate::coordinator::group`]).
    pub groups: crate::coordinator::group::SharedCoordinator,
    /// This shard's view of the topics and their typed configs.
    pub view: crate::view::MetadataView,
    /// The transactional ids this shard coordinates (see [`crate::coordinator::txn`]).
    pub txns: crate::coordinator::txn::SharedTxns,
}

impl ShardCtx {
    pub fn config(&self) -> &BrokerConfig {
        &self.broker.config
    }
}

/// The shard's group coordinator, as its door serves it.
struct Groups {
    ctx: Rc<ShardCtx>,
}

impl CoordinatorService<Call> for Groups {
    fn serve(&self, call: Call) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        let ctx = self.ctx.clone();
        match call {
            Call::Group(call) => Box::pin(async move {
                let groups = ctx.groups.clone();
                crate::handlers::groups::serve(&ctx, &groups, call).await;
            }),
            Call::Topic(change) => {
                self.apply(change);
                Box::pin(async {})
            }
            Call::Txn(call) => Box::pin(async move {
                let txns = ctx.txns.clone();
                crate::coordinator::txn::serve(&ctx, &txns, *call).await;
            }),
            call @ Call::TxnOffsetsEnded { .. } => {
                self.end_txn_offsets(call);
                Box::pin(async {})
            }
        }
    }

    fn refuse(&self, call: Call) {
        match call {
            Call::Group(call) => crate::handlers::groups::refuse(call),
            // Never refused: it is applied at once, and a view that missed it would be stale.
            Call::Topic(change) => self.apply(change),
            Call::Txn(call) => crate::coordinator::txn::refuse(*call),
            // Never refused either: the marker is written, and its offsets must follow it.
            call @ Call::TxnOffsetsEnded { .. } => self.end_txn_offsets(call),
        }
    }
}

impl Groups {
    fn end_txn_offsets(&self, call: Call) {
        if let Call::TxnOffsetsEnded { partition, producer_id, commit, reply } = call {
            self.ctx.groups.borrow_mut().end_txn_offsets(producer_id, partition, commit);
            let _ = reply.send(());
        }
    }

    fn apply(&self, change: crate::view::TopicChange) {
        let ctx = &self.ctx;
        if let Some(topic) = ctx.view.apply(&change.name, change.revision, change.meta) {
            // Config changes apply to the open logs of the topic this shard owns.
            let log = crate::handlers::admin::log_config_of(ctx.config(), &topic.meta.configs);
            for p in 0..topic.partitions() {
                let tp = engine::shard::TopicPartition::new(topic.name(), p);
                ctx.shard.apply_topic_config(&tp, &log);
            }
        }
        let _ = change.reply.send(());
    }
}

fn shard_ctx(broker: Arc<Broker>, shard: Rc<PartitionShard<DmaStorage>>, router: Router) -> Rc<ShardCtx> {
    // A single request of the largest allowed size must always fit.
    let budget = broker.config.request_bytes_in_flight_max.max(broker.config.request_bytes_max);
    let request_bytes = Rc::new(glommio::sync::Semaphore::new(u64::try_from(budget).unwrap_or(u64::MAX)));
    let groups = crate::coordinator::group::install(shard.id().index());
    {
        let mut c = groups.borrow_mut();
        c.broker = Some(broker.clone());
        c.settings = crate::coordinator::group::GroupSettings::from_config(&broker.config);
    }
    let view = crate::view::MetadataView::load(broker.clone());
    Rc::new(ShardCtx {
        broker,
        shard,
        router,
        request_bytes,
        fetch_sessions: Default::default(),
        groups,
        view,
        txns: Default::default(),
    })
}

async fn run_shard(ctx: Rc<ShardCtx>) {
    let id = ctx.shard.id();
    let broker = ctx.broker.clone();
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let groups = ctx.groups.clone();
            crate::coordinator::store::load(&ctx, &groups).await;
            crate::coordinator::store::persist_loop(&ctx, &groups).await;
        })
        .detach();
    }
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let txns = ctx.txns.clone();
            crate::coordinator::txn::load(&ctx, &txns).await;
            let interval = Duration::from_millis(ctx.config().transaction_cleanup_interval_ms);
            loop {
                glommio::timer::sleep(interval).await;
                crate::coordinator::txn::sweep(&ctx, &txns).await;
            }
        })
        .detach();
    }
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            // `log.retention.check.interval.ms`: how often this shard applies time and size
            // retention to the partitions it owns.
            let interval = Duration::from_millis(ctx.config().retention_check_interval_ms.max(1));
            loop {
                glommio::timer::sleep(interval).await;
                crate::handlers::retention::sweep(&ctx).await;
            }
        })
        .detach();
    }
    if ctx.config().log_cleaner_enable {
        glommio::spawn_local(crate::handlers::cleaner::run(ctx.clone())).detach();
    }
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(PRODUCER_UPKEEP_INTERVAL).await;
                ctx.shard.maintain_producers(engine::now_ms(), ctx.config().producer_id_expiration_ms).await;
            }
        })
        .detach();
    }
    let listener = match bind(broker.config.listen) {
        Ok((l, fd)) => {
            broker.listener_fds.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
            l
        }
        Err(e) => {
            eprintln!("fatal: shard {id} cannot listen on {}: {e}", broker.config.listen);
            std::process::exit(1);
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(_) if broker.stopping.load(Ordering::Acquire) => return,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("shard {id}: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let n = broker.connections.fetch_add(1, Ordering::AcqRel);
        if n >= broker.config.connections_max {
            broker.connections.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let _ = stream.set_nodelay(true);
            serve_connection(ctx.clone(), stream).await;
            ctx.broker.connections.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}

/// Binds a listening socket as glommio's `TcpListener::bind` does (SO_REUSEPORT, so every
/// shard binds the same address), keeping its descriptor.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<(TcpListener, std::os::unix::io::RawFd)> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket whose ownership moves to the listener.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    Ok((listener, fd))
}

/// A started request (see [`crate::handlers::Started`]).
type Pending = glommio::task::JoinHandle<Result<Option<Bytes>, ()>>;

async fn serve_connection(ctx: Rc<ShardCtx>, stream: TcpStream) {
    let peer: Rc<str> = stream.peer_addr().map(|a| format!("/{}", a.ip())).unwrap_or_default().into();
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (tx, rx) = glommio::channels::local_channel::new_bounded::<Pending>(ctx.config().requests_in_flight_max.max(1));
    let failed = Rc::new(RefCell::new(false));
    // Wakes the reader when the writer gives up, so a client that never sends again does not
    // keep the connection (and its slot under max.connections) alive.
    let writer_gone = Rc::new(engine::sync::Notify::new());
    let writer_task = {
        let failed = failed.clone();
        let writer_gone = writer_gone.clone();
        glommio::spawn_local(async move {
            while let Some(pending) = rx.recv().await {
                let frame = match pending.await {
                    Some(Ok(Some(frame))) => frame,
                    Some(Ok(None)) => continue,
                    // Unencodable response or a handler that died: close the connection.
                    Some(Err(())) | None => {
                        *failed.borrow_mut() = true;
                        break;
                    }
                };
                if writer.write_all(&frame).await.is_err() || writer.flush().await.is_err() {
                    *failed.borrow_mut() = true;
                    break;
                }
            }
            writer_gone.notify_all();
            let _ = writer.close().await;
        })
    };
    let idle = Duration::from_millis(ctx.config().connections_idle_ms_max);
    let request_bytes_max = ctx.config().request_bytes_max;
    let produce_order = engine::sync::Turns::default();
    loop {
        let gone = writer_gone.listen();
        if *failed.borrow() {
            break;
        }
        let body = async {
            let size = frame::read_size(&mut reader, request_bytes_max).await?;
            let permit = ctx
                .request_bytes
                .clone()
                .acquire_static_permit(size as u64)
                .await
                .map_err(|e| FrameError::Io(std::io::Error::other(e.to_string())))?;
            Ok::<_, FrameError>((frame::read_body(&mut reader, size).await?, permit))
        };
        let body = futures_lite::future::or(body, async {
            futures_lite::future::or(gone, glommio::timer::sleep(idle)).await;
            Err(FrameError::Closed)
        });
        let (body, permit) = match body.await {
            Ok(b) => b,
            Err(FrameError::Closed) => break,
            Err(e) => {
                if !matches!(e, FrameError::Io(_)) {
                    eprintln!("closing connection: {e}");
                }
                break;
            }
        };
        let started = match crate::handlers::start(&ctx, body, &peer, &produce_order) {
            Ok(Some(fut)) => fut,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("closing connection: {e}");
                break;
            }
        };
        // The request's bytes count against the shard's budget until it is answered.
        let task = glommio::spawn_local(async move {
            let r = started.await;
            drop(permit);
            r
        })
        .detach();
        if tx.send(task).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Frames a response: size, header (with the header version the API and version call for),
/// then the body.
pub fn encode_response(
    correlation_id: i32,
    header_version: i16,
    body: impl FnOnce(&mut BytesMut) -> anyhow_free::Result<()>,
) -> Option<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0); // no tagged fields
    }
    body(&mut buf).ok()?;
    let size = i32::try_from(buf.len() - 4).ok()?;
    (&mut buf[..4]).put_i32(size);
    Some(buf.freeze())
}

/// The crate's encoders return `anyhow::Result`; we only need to know it failed.
pub mod anyhow_free {
    pub type Result<T> = std::result::Result<T, ()>;
}
