#!/usr/bin/env node
// A local Kinesis (kinesalite) for cimaa's tests, listening on 127.0.0.1 only:
// kinesalite's own CLI listens on every interface.
//
//   node tests/services/kinesalite.js [--port N] [--path DIR]
//
// --port 0 (the default) picks a free port. Once listening it prints
// `kinesalite listening on http://127.0.0.1:PORT` on stdout. --path keeps
// streams and records in a LevelDB folder, so a restart on the same port
// finds them again (the outage test); without it everything is in memory.
// Streams are ACTIVE at once (createStreamMs 0). SIGTERM/SIGINT close it.
'use strict'

const kinesalite = require('kinesalite')

function option(name) {
  const i = process.argv.indexOf('--' + name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const port = Number(option('port') || 0)
const path = option('path')

const server = kinesalite({
  path: path,
  createStreamMs: 0,
  deleteStreamMs: 0,
  updateStreamMs: 0,
  // Every test creates its own stream; the default limit of 10 shards in all
  // would refuse them.
  shardLimit: 10000,
})

server.on('error', (error) => {
  console.error('kinesalite: ' + error.message)
  process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  const address = server.address()
  console.log('kinesalite listening on http://127.0.0.1:' + address.port)
})

function stop() {
  // Keep-alive connections (the agent's SDK client) would hold close() open.
  server.closeAllConnections()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
