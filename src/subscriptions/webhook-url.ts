// subscriptions/webhook-url.ts — which webhook URLs a subscription may name (PROTOCOL
// §6.2, §12.8: SSRF). https to public hosts; http only to the development exception
// (localhost, 127.0.0.x); never RFC 1918, loopback, link-local (cloud metadata at
// 169.254.169.254), CGNAT, unspecified, multicast or IPv6 local targets. A host name is
// checked again on the addresses it resolves to before each delivery (webhook.ts).

import { isIP } from 'node:net'

export type UrlVerdict = { readonly ok: true; readonly url: URL } | { readonly ok: false; readonly reason: string }

export function checkWebhookUrl(raw: string): UrlVerdict {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { ok: false, reason: 'webhook.url is not a valid absolute URL' }
  }
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'webhook.url must not carry credentials' }
  const host = hostOf(url)
  if (url.protocol === 'http:') {
    return isDevelopmentHost(host) ? { ok: true, url } : { ok: false, reason: 'http webhook URLs are allowed only for localhost and 127.0.0.x (development); use https' }
  }
  if (url.protocol !== 'https:') return { ok: false, reason: 'webhook.url must use https' }
  if (host === 'localhost' || host.endsWith('.localhost')) return { ok: false, reason: 'localhost webhooks are a development exception: use http://localhost' }
  if (isIP(host) !== 0 && isLocalAddress(host)) return { ok: false, reason: `webhook.url targets a private, loopback or link-local address (${host})` }
  return { ok: true, url }
}

/** The development exception: the server's own machine, over plain http. */
export function isDevelopmentHost(host: string): boolean {
  return host === 'localhost' || /^127\.0\.0\.\d{1,3}$/.test(host)
}

/** URL hostnames keep IPv6 brackets; addresses are compared without them. */
export function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1')
}

/** An address no webhook may reach (other than through the development exception). */
export function isLocalAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 4) return isLocalV4(address)
  if (family !== 6) return false
  const lower = address.toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower)
  if (mapped !== null) return isLocalV4(mapped[1]!)
  // The URL parser writes a mapped IPv4 address in hex: ::ffff:a01:203 is 10.1.2.3.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower)
  if (hex !== null) {
    const high = parseInt(hex[1]!, 16)
    const low = parseInt(hex[2]!, 16)
    return isLocalV4(`${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`)
  }
  return lower === '::' || lower === '::1' || /^f[cd]/.test(lower) || /^fe[89ab]/.test(lower) || lower.startsWith('ff')
}

function isLocalV4(address: string): boolean {
  const [a, b] = address.split('.').map(Number) as [number, number]
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    a >= 224
  )
}
