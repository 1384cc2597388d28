//! Time and size retention, run on every shard for the partitions it owns (the engine offers
//! the cut-off; the topic configs that drive it live here).

use crate::handlers::configs;
use crate::server::ShardCtx;

pub async fn sweep(ctx: &ShardCtx) {
    let now = engine::now_ms();
    for tp in ctx.shard.partitions() {
        let Some(meta) = ctx.broker.topics.get(&tp.topic) else { continue };
        let Some(partition) = ctx.shard.partition(&tp) else { continue };
        let policy = configs::effective(ctx.config(), &meta.configs, "cleanup.policy").unwrap_or_default();
        if !policy.split(',').any(|p| p.trim() == "delete") {
            continue;
        }
        let ms = configs::effective_i64(ctx.config(), &meta.configs, "retention.ms").filter(|&v| v >= 0);
        let bytes = configs::effective_i64(ctx.config(), &meta.configs, "retention.bytes")
            .filter(|&v| v >= 0)
            .and_then(|v| u64::try_from(v).ok());
        // A failure poisons the log, which reports it to its next caller.
        let _ = partition.apply_retention(now, ms, bytes).await;
        glommio::yield_if_needed().await;
    }
}
