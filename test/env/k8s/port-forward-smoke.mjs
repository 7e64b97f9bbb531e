#!/usr/bin/env node
// Prove pods/portforward works on the up.sh control plane: apiserver -> kwok's kubelet
// API (127.0.0.1:kwokPort, HTTPS) -> kwok PortForward / ClusterPortForward target
// (a plain HTTP server on 127.0.0.1:random started here).
//
//   A. bare Pod (known name) + namespaced PortForward named like the pod
//   B. Deployment (random pod names) + ClusterPortForward selecting the namespace
//   C. precedence: a PortForward for one pod wins over the ClusterPortForward
//   D. kubectl port-forward deployment/pf-b (if build.sh built kubectl): WebSocket with
//      SPDY/3.1+portforward.k8s.io, which the apiserver translates to SPDY to kwok
//
// Each forward is exercised over a raw WebSocket (subprotocol v4.channel.k8s.io, the
// bytes printed) and through @kubernetes/client-node's PortForward behind a local TCP
// listener (what src/ does). Talks only to 127.0.0.1.
//
// Usage: node test/env/k8s/port-forward-smoke.mjs [STATE_DIR]
//   without STATE_DIR: runs up.sh, the checks, then down.sh (also on failure).
import {execFileSync, spawn} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import os from 'node:os'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {KubeConfig, PortForward} from '@kubernetes/client-node'
import WebSocket from 'ws'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const T0 = performance.now()
const el = () => ((performance.now() - T0) / 1000).toFixed(2) + 's'
const log = (...a) => console.log(`[pf-smoke ${el()}]`, ...a)
const sleep = ms => new Promise(r => setTimeout(r, ms))
function fail(msg) {
  throw new Error('PORT-FORWARD SMOKE FAIL: ' + msg)
}

let stateDir = process.argv[2]
const own = !stateDir
if (own) {
  const out = execFileSync(path.join(HERE, 'up.sh'), [], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit']})
  stateDir = JSON.parse(out.trim().split('\n').pop()).stateDir
}
const cluster = JSON.parse(readFileSync(path.join(stateDir, 'cluster.json'), 'utf8'))
log('cluster', JSON.stringify({server: cluster.server, kwokPort: cluster.kwokPort, startupSeconds: cluster.startupSeconds}))
const pki = path.join(stateDir, 'pki')
const tls = {
  ca: readFileSync(path.join(pki, 'ca.crt')),
  cert: readFileSync(path.join(pki, 'admin.crt')),
  key: readFileSync(path.join(pki, 'admin.key')),
}
const server = new URL(cluster.server)
const agent = new https.Agent({...tls, keepAlive: true})

function api(method, p, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: server.hostname,
        port: server.port,
        method,
        path: p,
        agent,
        headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      },
      res => {
        let data = ''
        res.setEncoding('utf8')
        res.on('data', c => {
          data += c
        })
        res.on('end', () => {
          const obj = data ? JSON.parse(data) : {}
          if (res.statusCode >= 300) reject(new Error(`${method} ${p}: HTTP ${res.statusCode} ${obj.message ?? data}`))
          else resolve(obj)
        })
      },
    )
    req.on('error', reject)
    if (body) req.end(JSON.stringify(body))
    else req.end()
  })
}

// plain HTTP servers on 127.0.0.1:random: the "containers" behind the pods
function target(tag) {
  return new Promise(resolve => {
    const srv = http.createServer((req, res) => {
      const body = `hello from ${tag} (${req.method} ${req.url})\n`
      res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)})
      res.end(body)
    })
    srv.listen(0, '127.0.0.1', () => resolve(srv))
  })
}

// --- raw WebSocket port-forward: v4.channel.k8s.io framing ---------------------------
// Every binary message starts with a channel byte: 0 = data of the 1st port, 1 = error
// of the 1st port (2/3 for a 2nd port...). The first message the server sends on each
// channel is the port number, uint16 little-endian: [0, 0x90, 0x1f] and [1, 0x90, 0x1f]
// for 8080. The client sends [0, ...bytes] to write to the port.
function rawForward(ns, pod, port, request, {verbose = false} = {}) {
  return new Promise((resolve, reject) => {
    const url = `wss://${server.host}/api/v1/namespaces/${ns}/pods/${pod}/portforward?ports=${port}`
    const ws = new WebSocket(url, ['v4.channel.k8s.io'], {...tls})
    const seenPort = {}
    const frames = []
    let data = Buffer.alloc(0)
    let errText = ''
    let done = false
    const finish = (err, val) => {
      if (done) return
      done = true
      clearTimeout(timer)
      try {
        ws.close()
      } catch {
        // already closed
      }
      if (err) reject(err)
      else resolve(val)
    }
    const timer = setTimeout(() => finish(new Error(`timeout; data=${JSON.stringify(data.toString())} err=${errText}`)), 5000)
    ws.on('unexpected-response', (_req, res) => {
      let b = ''
      res.on('data', c => {
        b += c
      })
      res.on('end', () => finish(new Error(`upgrade refused: HTTP ${res.statusCode} ${b}`)))
    })
    ws.on('error', e => finish(e))
    ws.on('open', () => {
      if (verbose) log(`  ws open, negotiated subprotocol: ${ws.protocol}`)
    })
    ws.on('message', (msg, isBinary) => {
      const buf = Buffer.from(msg)
      if (frames.length < 6)
        frames.push(
          `${isBinary ? 'bin' : 'text'}[${[...buf.subarray(0, 8)].map(b => '0x' + b.toString(16).padStart(2, '0')).join(' ')}${buf.length > 8 ? ' ...' : ''}] len=${buf.length}`,
        )
      const ch = buf[0]
      let payload = buf.subarray(1)
      if (!seenPort[ch]) {
        seenPort[ch] = true
        const p = payload.readUInt16LE(0)
        if (p !== port) return finish(new Error(`channel ${ch}: first frame port ${p} != ${port}`))
        payload = payload.subarray(2)
        // both channels announced: send the request on the data channel
        if (seenPort[0] && seenPort[1]) ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(request)]))
      }
      if (payload.length === 0) return
      if (ch === 0) {
        data = Buffer.concat([data, payload])
        const s = data.toString()
        const he = s.indexOf('\r\n\r\n')
        const m = /content-length: *(\d+)/i.exec(s)
        if (he >= 0 && m && data.length >= he + 4 + Number(m[1])) finish(null, {response: s, frames})
      } else if (ch === 1) {
        errText += payload.toString()
        finish(new Error(`error channel: ${errText}`))
      }
    })
    ws.on('close', (code, reason) => finish(new Error(`closed ${code} ${reason}; data=${JSON.stringify(data.toString())} err=${errText}`)))
  })
}

// --- @kubernetes/client-node PortForward behind a local TCP listener -----------------
const kc = new KubeConfig()
kc.loadFromFile(cluster.kubeconfig)
async function clientNodeForward(ns, pod, port) {
  const errors = []
  const local = net.createServer(sock => {
    const pf = new PortForward(kc, true)
    // the error channel's first frame is only the port number: PortForward strips it
    // and writes an empty buffer here
    const err = {
      write: b => {
        if (b.length) errors.push(Buffer.from(b).toString())
      },
    }
    pf.portForward(ns, pod, [port], sock, err, sock)
      .then(ws => {
        sock.on('close', () => ws.close())
        ws.on('close', () => sock.destroy())
      })
      .catch(e => {
        errors.push(String(e))
        sock.destroy()
      })
  })
  await new Promise(r => local.listen(0, '127.0.0.1', r))
  try {
    const {port: lp} = local.address()
    const body = await new Promise((resolve, reject) => {
      const req = http.get({host: '127.0.0.1', port: lp, path: '/via-client-node', agent: false, timeout: 5000}, res => {
        let b = ''
        res.setEncoding('utf8')
        res.on('data', c => {
          b += c
        })
        res.on('end', () => resolve(b))
      })
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', e => reject(new Error(`${e.message}; port-forward errors: ${errors.join(' | ')}`)))
    })
    if (errors.length) fail(`client-node errors: ${errors.join(' | ')}`)
    return body
  } finally {
    local.close()
  }
}

// kwok sees new (Cluster)PortForward objects through a watch: retry briefly.
async function retry(what, fn, ms = 5000) {
  const deadline = performance.now() + ms
  for (let i = 1; ; i++) {
    try {
      const r = await fn()
      if (i > 1) log(`  (${what}: ok after ${i} attempts)`)
      return r
    } catch (e) {
      if (performance.now() > deadline) fail(`${what}: ${e.message}`)
      if (process.env.PF_SMOKE_VERBOSE) log(`  (${what}: attempt ${i}: ${e.message.trim()})`)
      await sleep(100)
    }
  }
}

async function waitRunning(ns, selector, n) {
  const deadline = performance.now() + 30000
  for (;;) {
    const pods = (await api('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`)).items
    const running = pods.filter(p => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp)
    if (running.length >= n) return running.map(p => p.metadata.name)
    if (performance.now() > deadline) fail(`pods ${selector}: ${running.length}/${n} Running`)
    await sleep(100)
  }
}

function checkBody(where, got, tag) {
  if (!got.includes(`hello from ${tag}`)) fail(`${where}: expected body from ${tag}, got ${JSON.stringify(got)}`)
  log(`  OK ${where}: ${JSON.stringify(got.split('\r\n\r\n').pop().trim())}`)
}

const servers = []
let exitCode = 0
try {
  const [a, b, c] = [await target('A'), await target('B'), await target('C')]
  servers.push(a, b, c)
  const portOf = s => s.address().port
  log(`targets: A=127.0.0.1:${portOf(a)} B=127.0.0.1:${portOf(b)} C=127.0.0.1:${portOf(c)}`)
  const NS = `pf-smoke-${process.pid}`
  await api('POST', '/api/v1/namespaces', {apiVersion: 'v1', kind: 'Namespace', metadata: {name: NS}})

  // --- A: bare pod + PortForward (same name/namespace as the pod) ------------------
  log('A: Pod pf-a on kwok-node-0 + PortForward pf-a -> target A')
  const podSpec = {
    nodeName: cluster.nodeName,
    containers: [{name: 'main', image: 'registry.invalid/mlops/nothing:1', ports: [{name: 'http', containerPort: 8080}]}],
  }
  await api('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {name: 'pf-a', labels: {app: 'pf-a'}},
    spec: podSpec,
  })
  log('  pod created')
  const pfA = {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'PortForward',
    metadata: {name: 'pf-a', namespace: NS},
    spec: {forwards: [{ports: [8080], target: {address: '127.0.0.1', port: portOf(a)}}]},
  }
  await api('POST', `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${NS}/portforwards`, pfA)
  log('  PortForward: ' + JSON.stringify(pfA))
  await waitRunning(NS, 'app=pf-a', 1)
  const req = p => `GET ${p} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n`
  const rA = await retry('A raw ws', () => rawForward(NS, 'pf-a', 8080, req('/raw-ws'), {verbose: true}))
  log('  first server frames: ' + rA.frames.join(', '))
  checkBody('A raw ws', rA.response, 'A')
  checkBody('A client-node PortForward', await retry('A client-node', () => clientNodeForward(NS, 'pf-a', 8080)), 'A')

  // --- B: Deployment (random pod names) + ClusterPortForward by namespace ----------
  log('B: Deployment pf-b (2 replicas) + ClusterPortForward selecting its namespace -> target B')
  await api('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {name: 'pf-b'},
    spec: {
      replicas: 2,
      selector: {matchLabels: {app: 'pf-b'}},
      template: {metadata: {labels: {app: 'pf-b'}}, spec: {containers: podSpec.containers}},
    },
  })
  const cpfB = {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'ClusterPortForward',
    metadata: {name: NS},
    spec: {selector: {matchNamespaces: [NS]}, forwards: [{ports: [8080], target: {address: '127.0.0.1', port: portOf(b)}}]},
  }
  await api('POST', '/apis/kwok.x-k8s.io/v1alpha1/clusterportforwards', cpfB)
  log('  ClusterPortForward: ' + JSON.stringify(cpfB))
  const podsB = await waitRunning(NS, 'app=pf-b', 2)
  for (const pod of podsB) {
    checkBody(`B raw ws (${pod})`, (await retry('B raw ws', () => rawForward(NS, pod, 8080, req('/raw-ws')))).response, 'B')
    checkBody(`B client-node (${pod})`, await retry('B client-node', () => clientNodeForward(NS, pod, 8080)), 'B')
  }
  // port not listed in any forward -> error on channel 1
  const e = await rawForward(NS, podsB[0], 9999, req('/')).then(
    () => null,
    err => err.message,
  )
  if (!e || !e.includes('no forward found')) fail(`port 9999: expected "no forward found", got ${e}`)
  log(`  OK unlisted port 9999 -> ${e.trim()}`)

  // --- C: PortForward named like one Deployment pod overrides the ClusterPortForward --
  log(`C: PortForward ${podsB[0]} -> target C (overrides the ClusterPortForward for that pod)`)
  await api('POST', `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${NS}/portforwards`, {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'PortForward',
    metadata: {name: podsB[0], namespace: NS},
    spec: {forwards: [{target: {address: '127.0.0.1', port: portOf(c)}}]},
  })
  checkBody(
    `C raw ws (${podsB[0]})`,
    (
      await retry('C raw ws', async () => {
        const r = await rawForward(NS, podsB[0], 8080, req('/raw-ws'))
        if (!r.response.includes('hello from C')) throw new Error('not yet C: ' + r.response.split('\r\n\r\n').pop())
        return r
      })
    ).response,
    'C',
  )
  checkBody(`C other pod still B (${podsB[1]})`, (await rawForward(NS, podsB[1], 8080, req('/raw-ws'))).response, 'B')

  // --- D: kubectl port-forward deployment/... (tunnelled SPDY over WebSocket) -------
  const kubectl = path.join(process.env.MLOPS_TEST_CACHE ?? path.join(os.homedir(), '.cache/mlops-test'), 'k8s-v1.36.3/bin/kubectl')
  if (existsSync(kubectl)) {
    log(`D: kubectl port-forward deployment/pf-b :8080`)
    const kp = spawn(
      kubectl,
      ['--kubeconfig', cluster.kubeconfig, '-n', NS, 'port-forward', '--address', '127.0.0.1', 'deployment/pf-b', ':8080'],
      {stdio: ['ignore', 'pipe', 'pipe']},
    )
    try {
      const lp = await new Promise((resolve, reject) => {
        let out = ''
        const t = setTimeout(() => reject(new Error('kubectl: no "Forwarding from" in 10 s: ' + out)), 10000)
        const on = c => {
          out += c
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)
          if (m) {
            clearTimeout(t)
            resolve(Number(m[1]))
          }
        }
        kp.stdout.on('data', on)
        kp.stderr.on('data', on)
        kp.on('exit', code => reject(new Error(`kubectl exited ${code}: ${out}`)))
      })
      const body = await new Promise((resolve, reject) => {
        http
          .get({host: '127.0.0.1', port: lp, path: '/via-kubectl', agent: false, timeout: 5000}, res => {
            let b = ''
            res.setEncoding('utf8')
            res.on('data', c => {
              b += c
            })
            res.on('end', () => resolve(b))
          })
          .on('error', reject)
      })
      // deployment/pf-b resolves to one of its pods: C's override or B
      if (!/hello from [BC]/.test(body)) fail(`kubectl: ${JSON.stringify(body)}`)
      log(`  OK D kubectl port-forward: ${JSON.stringify(body.trim())}`)
    } finally {
      kp.kill('SIGTERM')
    }
  } else {
    log(`D: skipped (no ${kubectl})`)
  }

  await api('DELETE', `/apis/kwok.x-k8s.io/v1alpha1/clusterportforwards/${NS}`)
  await api('DELETE', `/api/v1/namespaces/${NS}`)
  log('PORT-FORWARD SMOKE OK')
} catch (err) {
  console.error(err.message)
  exitCode = 1
} finally {
  for (const s of servers) s.close()
  agent.destroy()
  if (own) execFileSync(path.join(HERE, 'down.sh'), [stateDir], {stdio: 'inherit'})
  log(`done (exit ${exitCode})`)
  process.exitCode = exitCode
}
