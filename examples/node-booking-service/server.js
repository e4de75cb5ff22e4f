'use strict';
// The Node.js booking service under trace-harness (CONTRACT.md): configured by the contract's
// environment, it opens its store and its telemetry, listens on 127.0.0.1:PORT, says
// `listening on http://127.0.0.1:<port>` once it does, and on SIGTERM stops serving, exports
// every span still held and exits 0.
//
//   trace-harness run scenarios/ --service examples/node-booking-service/service.toml

const { loadConfig } = require('./src/config');
const { setupTelemetry, shutdownTelemetry, log } = require('./src/telemetry');
const { openStore } = require('./src/store');
const { serviceIds } = require('./src/ids');
const { outbound } = require('./src/outbound');
const { buildApp } = require('./src/app');

async function main() {
  /** @type {{app?: import('fastify').FastifyInstance, store?: {close(): void, releaseLeases(holder: number): number}, generation?: bigint}} */
  const running = {};
  let stopping = false;
  // Listened for first, so that a signal during start-up is never the default action's.
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      // In-flight requests finish first; their spans end before the last export. Then every
      // job this process still holds is given back for the next cron call to take at once.
      await running.app?.close();
      const released = running.store?.releaseLeases(Number(running.generation ?? 0)) ?? 0;
      if (released > 0) log('warn', 'trace_harness::booking', `Stopping with ${released} unfinished job(s): their leases are released`);
      await shutdownTelemetry();
      running.store?.close();
    } catch (e) {
      process.stderr.write(`error while stopping: ${/** @type {Error} */ (e).stack ?? e}\n`);
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const config = loadConfig();
  setupTelemetry(config);
  const store = await openStore(config.databasePath, config.storeLatencyUs);
  running.store = store;
  running.generation = config.generation;
  const ids = serviceIds(config.seed, config.generation);
  const http = outbound({ propagate: !config.bugs.has('drop_traceparent') });
  const app = buildApp({ config, store, ids, http });
  running.app = app;
  if (stopping) return;

  await app.listen({ port: config.port, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
}

main().catch((e) => {
  process.stderr.write(`node-booking-service: ${e?.stack ?? e}\n`);
  process.exit(1);
});
