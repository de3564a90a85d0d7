// A small HTTP server for the export tests, standing between the database
// and Azurite (or standing in for Azure):
//
//   node blob_proxy.mjs --port-file F --log F [--upstream PORT]
//        [--fail-first N] [--retry-after S] [--delay-ms D] [--bearer TOKEN]
//
//   --upstream PORT   forward every request to Azurite on 127.0.0.1:PORT
//   --fail-first N    answer the first N requests with 503 and Retry-After
//   --delay-ms D      hold each request D ms before forwarding it
//   --reject-blocklist N  answer the Nth Put Block List with 400 (once)
//   --reject-put-while FILE --reject-put-path SUBSTR  while FILE exists,
//                     answer PUTs whose path holds SUBSTR with 400
//   --log-prefix 1    add " prefix=P" (decoded) to the line of a List Blobs
//   --bearer TOKEN    act as blob storage itself (without keeping the data):
//                     201, or for Delete Blob 202 or 404, to requests that
//                     carry "Authorization: Bearer TOKEN", 403 to others
//   also always:      POST /<tenant>/oauth2/v2.0/token and
//                     GET /metadata/identity/oauth2/token answer
//                     {"access_token": TOKEN, "expires_in": 3600}
//
// It prints its port to --port-file and logs one line per request to --log:
// "METHOD PATH STATUS [form or auth details]".
import http from 'node:http'
import fs from 'node:fs'

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
  if (v.startsWith('--')) a.push([v.slice(2), all[i + 1]])
  return a
}, []))
const upstream = args.upstream ? Number(args.upstream) : null
let failLeft = Number(args['fail-first'] || 0)
const retryAfter = args['retry-after'] || '1'
const delayMs = Number(args['delay-ms'] || 0)
const rejectBlocklist = Number(args['reject-blocklist'] || 0)
let blocklists = 0
const rejectWhile = args['reject-put-while'] || null
const rejectPath = args['reject-put-path'] || ''
const stored = new Set()
const bearer = args.bearer || 'test-token'
const agent = new http.Agent({ keepAlive: true })
const log = (line) => fs.appendFileSync(args.log, line + '\n')

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0]
  const query = req.url.includes('?') ? req.url.split('?')[1] : ''
  const comp = (query.match(/comp=([a-z]+)/) || [])[1] || ''
  const listPrefix = args['log-prefix'] && comp === 'list'
    ? ` prefix=${new URLSearchParams(query).get('prefix') || ''}` : ''
  const what = `${req.method} ${path}${comp ? ' comp=' + comp : ''}${listPrefix}`
  if (path.endsWith('/oauth2/v2.0/token') || path === '/metadata/identity/oauth2/token') {
    let body = ''
    req.on('data', (d) => { body += d })
    req.on('end', () => {
      const form = new URLSearchParams(req.method === 'POST' ? body : query)
      log(`${what} 200 grant_type=${form.get('grant_type') || ''} scope=${form.get('scope') || form.get('resource') || ''} client_id=${form.get('client_id') || ''} secret_ok=${form.get('client_secret') === 'sp-secret'} metadata=${req.headers.metadata || ''} assertion=${form.get('client_assertion') || ''}`)
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ access_token: bearer, expires_in: '3600', token_type: 'Bearer' }))
    })
    return
  }
  if (failLeft > 0) {
    failLeft--
    req.resume()
    req.on('end', () => {
      log(`${what} 503`)
      res.writeHead(503, { 'Retry-After': retryAfter, 'Content-Type': 'application/xml' })
      res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>injected</Message></Error>')
    })
    return
  }
  if (rejectWhile && req.method === 'PUT' && path.includes(rejectPath) && fs.existsSync(rejectWhile)) {
    req.resume()
    req.on('end', () => {
      log(`${what} 400`)
      res.writeHead(400, { 'Content-Type': 'application/xml' })
      res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidInput</Code><Message>injected</Message></Error>')
    })
    return
  }
  if (comp === 'blocklist' && ++blocklists === rejectBlocklist) {
    req.resume()
    req.on('end', () => {
      log(`${what} 400`)
      res.writeHead(400, { 'Content-Type': 'application/xml' })
      res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidBlockList</Code><Message>injected</Message></Error>')
    })
    return
  }
  if (upstream === null) {
    req.resume()
    req.on('end', () => {
      const ok = req.headers.authorization === `Bearer ${bearer}`
      // committed blobs (Put Block List, or Put Blob: a PUT without comp)
      // are remembered, so a delete of anything else is 404
      if (ok && req.method === 'PUT' && (comp === 'blocklist' || comp === '')) stored.add(path)
      const status = !ok ? 403 : req.method !== 'DELETE' ? 201 : stored.delete(path) ? 202 : 404
      log(`${what} ${status} auth=${(req.headers.authorization || '').split(' ')[0]}`)
      res.writeHead(status, { 'Content-Type': 'application/xml' })
      res.end(ok ? '' : '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code></Error>')
    })
    return
  }
  const forward = () => {
    const up = http.request({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url,
      headers: req.headers, agent }, (ures) => {
      log(`${what} ${ures.statusCode}`)
      res.writeHead(ures.statusCode, ures.headers)
      ures.pipe(res)
    })
    up.on('error', () => { log(`${what} upstream-error`); req.socket.destroy() })
    req.pipe(up)
  }
  if (delayMs > 0) setTimeout(forward, delayMs)
  else forward()
})
process.on('SIGTERM', () => process.exit(0))
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(args['port-file'], String(server.address().port))
})
