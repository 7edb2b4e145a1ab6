import { describe, expect, it } from 'vitest'
import { checkWebhookUrl, isLocalAddress } from './webhook-url.js'

describe('webhook URL validation', () => {
  it('accepts https to public hosts and http to the development exception', () => {
    for (const url of ['https://worker.example/hooks', 'https://93.184.216.34/h', 'http://localhost:9000/h', 'http://127.0.0.1:8080/webhook']) {
      expect(checkWebhookUrl(url).ok, url).toBe(true)
    }
  })

  it('rejects private, loopback, link-local and plain-http targets', () => {
    for (const url of [
      'http://10.0.0.1/hook',
      'https://10.0.0.1/hook',
      'https://192.168.1.5/h',
      'https://172.20.0.1/h',
      'https://169.254.169.254/latest/meta-data',
      'https://127.0.0.1/h',
      'https://[::1]/h',
      'https://[fd00::1]/h',
      'https://[::ffff:10.1.2.3]/h',
      'https://localhost/h',
      'http://worker.example/h',
      'ftp://worker.example/h',
      'https://user:pw@worker.example/h',
      'not a url',
    ]) {
      expect(checkWebhookUrl(url).ok, url).toBe(false)
    }
  })

  it('classifies resolved addresses', () => {
    expect(isLocalAddress('100.64.0.1')).toBe(true)
    expect(isLocalAddress('8.8.8.8')).toBe(false)
    expect(isLocalAddress('2606:4700::1111')).toBe(false)
    expect(isLocalAddress('fe80::1')).toBe(true)
  })
})
