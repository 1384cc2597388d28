//! Time and size retention, run on every shard for the partitions it owns (the engine offers
//! the cut-off; the topic configs that drive it live here).

use crate::server::ShardCtx;

pub async fn sweep(ctx: &ShardCtx) {
    let now = engine::now_ms();
    for tp in ctx.shard.partitions() {
        let Some(topic) = ctx.view.get(&tp.topic) else { continue };
        let Some(partition) = ctx.shard.partition(&tp) else { continue };
        let cfg = &topic.config;
        if !cfg.retention_deletes {
            continue;
        }
        let (ms, bytes) = (cfg.retention_ms, cfg.retention_bytes);
        // A failure poisons the log, which reports it to its next caller.
        let _ = partition.apply_retention(now, ms, bytes).await;
        glommio::yield_if_needed().await;
    }
}
