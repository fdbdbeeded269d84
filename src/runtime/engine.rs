//! The engine and its linkers, configured once from `[runtime]`.
//!
//! Owns the wasmtime `Config` (epoch interruption, fuel, the pooling allocator and its sizes,
//! the compiled-module cache) and the linkers (host functions; host functions plus WASI
//! preview 1; for components, the host interfaces plus WASI preview 2). It must never load a
//! module or start a thread.

use wasmtime::{Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::state::HostState;
use super::{component, host};
use crate::config::RuntimeConfig;

/// The engine and the linkers every module version is linked with.
pub struct Engines {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// `linker` plus WASI preview 1, for modules granted `wasi`.
    pub wasi_linker: Linker<HostState>,
    /// For components: the host interfaces and WASI preview 2 ([`component::linker`]).
    pub component_linker: wasmtime::component::Linker<HostState>,
}

pub fn build(cfg: &RuntimeConfig) -> anyhow::Result<Engines> {
    let mut wcfg = wasmtime::Config::new();
    wcfg.epoch_interruption(true);
    wcfg.consume_fuel(cfg.fuel);
    let mut pool = PoolingAllocationConfig::default();
    // Components get slots of their own on top of the core modules' `max_instances`: each of
    // the `max_component_instances` adds its per-component budget of core instances, memories
    // and tables (a Python component links 16 core instances), so a burst of components never
    // takes the slots core modules are sized for.
    let comps = cfg.max_component_instances;
    pool.total_component_instances(comps)
        .max_core_instances_per_component(component::CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(component::MEMORIES_PER_COMPONENT)
        .max_tables_per_component(component::TABLES_PER_COMPONENT)
        .total_core_instances(cfg.max_instances + comps * component::CORE_INSTANCES_PER_COMPONENT)
        .total_memories(cfg.max_instances + comps * component::MEMORIES_PER_COMPONENT)
        .total_tables(cfg.max_instances + comps * component::TABLES_PER_COMPONENT)
        .total_stacks(cfg.max_instances + comps)
        .max_memory_size((cfg.max_memory_mib as usize) * 1024 * 1024)
        // Reset the start of memory (data, small stacks, the first allocations) with
        // memset and keep it resident, instead of madvise + page faults on every event.
        .pagemap_scan(if cfg.pagemap_scan { wasmtime::Enabled::Auto } else { wasmtime::Enabled::No })
        .linear_memory_keep_resident(cfg.keep_resident_kib * 1024)
        .table_keep_resident(64 * 1024)
        .async_stack_keep_resident(64 * 1024)
        .decommit_batch_size(32);
    wcfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if let Some(dir) = &cfg.cache_dir {
        let dir = std::path::absolute(dir)?;
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(&dir);
        match wasmtime::Cache::new(cc) {
            Ok(cache) => {
                wcfg.cache(Some(cache));
            }
            Err(e) => tracing::warn!(dir = %dir.display(), "compiled-module cache disabled: {e:#}"),
        }
    }
    let engine = Engine::new(&wcfg)?;
    let mut linker = Linker::new(&engine);
    host::add_to_linker(&mut linker)?;
    let mut wasi_linker = linker.clone();
    wasmtime_wasi::p1::add_to_linker_async(&mut wasi_linker, |s: &mut HostState| {
        s.wasi.as_mut().expect("WASI context exists for every module linked with WASI")
    })?;
    let component_linker = component::linker(&engine)?;
    Ok(Engines { engine, linker, wasi_linker, component_linker })
}
