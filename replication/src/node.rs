//! Starting and stopping this node's shards: the engine's executors, each running its door
//! and the higher layer's service.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use engine::io::dma::DmaStorage;
use engine::shard::{ShardMain, ShardSet, ShardSetConfig};

use crate::door::{CoordinatorService, DoorLimits, SHARD_QUEUE_DEPTH};
use crate::ids::{LeaderEpoch, NodeId};
use crate::router::{Placement, Router};
use crate::shard::{PartitionShard, ShardRequest};

/// What the higher layer runs on one shard: its coordinators (served through the door) and a
/// main future (listeners, background work), spawned beside the door.
pub struct ShardServices<X> {
    pub coordinator: Option<Rc<dyn CoordinatorService<X>>>,
    pub main: Pin<Box<dyn Future<Output = ()>>>,
}

/// Builds a shard's services once its partitions are recovered.
pub type ServiceFactory<X> = Arc<dyn Fn(Rc<PartitionShard<DmaStorage>>, Router<X>) -> ShardServices<X> + Send + Sync>;

type Inbox<X> = flume::Receiver<ShardRequest<X>>;

/// This node's running shards.
pub struct Node<X> {
    set: ShardSet,
    router: Router<X>,
}

/// How to start a node.
#[derive(Clone)]
pub struct NodeConfig {
    pub node_id: NodeId,
    pub shards: ShardSetConfig,
    pub door: DoorLimits,
    pub placement: Placement,
}

impl NodeConfig {
    pub fn new(shards: ShardSetConfig) -> Self {
        Self { node_id: NodeId(0), shards, door: DoorLimits::default(), placement: Placement::new() }
    }
}

/// The file in the data directory counting this node's starts (see [`next_generation`]).
pub const GENERATION_FILE: &str = "leader-generation";

/// Counts this start: reads the previous count from the data directory, stores one more
/// (written to a temporary file, synced, renamed, directory synced) and returns it. Each start
/// is a leadership change for every partition this node leads, as a restart is with Kafka, so
/// each start's leader epochs are at least this. Runs before any shard thread exists.
pub fn next_generation(data_dir: &Path) -> std::io::Result<LeaderEpoch> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(GENERATION_FILE);
    let next = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let previous: i32 = text.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a start count: {:?}", path.display(), text.trim()),
                )
            })?;
            previous.checked_add(1).ok_or_else(|| std::io::Error::other("start count overflow"))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let tmp = data_dir.join(format!("{GENERATION_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, format!("{next}\n").as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(LeaderEpoch(next))
}

impl<X: Send + 'static> Node<X> {
    /// Starts every shard; returns once all have recovered their partitions.
    pub fn start(config: NodeConfig, services: Option<ServiceFactory<X>>) -> std::io::Result<Self> {
        let n = config.shards.shard_count.max(1);
        let generation = next_generation(&config.shards.data_dir)?;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| flume::bounded::<ShardRequest<X>>(SHARD_QUEUE_DEPTH)).unzip();
        let placement = Arc::new(config.placement);
        let router = Router::new(senders, placement.clone());
        // Each shard takes its own inbox's receiving end once, on its thread.
        let receivers: Arc<Mutex<Vec<Option<Inbox<X>>>>> =
            Arc::new(Mutex::new(receivers.into_iter().map(Some).collect()));
        let mut shards = config.shards;
        shards.placement = placement.as_fn();
        let (node, door) = (config.node_id, config.door);
        let main_router = router.clone();
        let main: ShardMain = Arc::new(move |store, loaded| {
            let id = store.id;
            let inbox = receivers.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id).and_then(Option::take);
            let router = main_router.clone();
            let services = services.clone();
            Box::pin(async move {
                let Some(inbox) = inbox else { return };
                let shard = PartitionShard::new(store, loaded, node, generation);
                let coordinator = match services {
                    Some(f) => {
                        let s = f(shard.clone(), router);
                        glommio::spawn_local(s.main).detach();
                        s.coordinator
                    }
                    None => None,
                };
                crate::door::run(shard, inbox, door, coordinator).await;
            })
        });
        let set = ShardSet::start(shards, main)?;
        Ok(Self { set, router })
    }

    pub fn router(&self) -> Router<X> {
        self.router.clone()
    }

    /// Closes every log cleanly (syncs, writes indexes) and joins the shard threads.
    pub fn shutdown(self) {
        for s in self.router.shards() {
            let _ = self.router.call_blocking(s, |reply| ShardRequest::Shutdown { reply });
        }
        self.set.join();
    }
}
