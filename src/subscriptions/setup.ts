// subscriptions/setup.ts — puts the subscription APIs together for one server: the signing
// keys, the manager (the state machine, told of every stream change and control record from
// recovery on, so it is made before recovery) and the webhook deliveries.

import { WebhookDeliveries } from './delivery.js'
import { SubscriptionKeys } from './keys.js'
import { type ManagerOptions, SubscriptionManager } from './manager.js'

export interface SubscriptionsOptions extends Omit<ManagerOptions, 'keys'> {
  /** Where the webhook signing key is kept; undefined: a key for this process only. */
  readonly keysDir: string | undefined
  /** A signing key file given by the operator (overrides keysDir). */
  readonly signingKeyFile: string | undefined
  /** Webhook requests in flight at once, and how long one attempt may take. */
  readonly deliveriesMax: number
  readonly webhookTimeoutMs: number
}

export interface Subscriptions {
  readonly manager: SubscriptionManager
  readonly deliveries: WebhookDeliveries
}

/** Builds the subscription APIs and makes the engine tell them every change. */
export function setUpSubscriptions(options: SubscriptionsOptions): Subscriptions {
  const { engine } = options
  const keys = SubscriptionKeys.load(options.keysDir, options.signingKeyFile)
  const manager = new SubscriptionManager({ ...options, keys })
  const deliveries = new WebhookDeliveries({ manager, keys, inFlightMax: options.deliveriesMax, timeoutMs: options.webhookTimeoutMs })
  manager.delivery = deliveries
  engine.observer = manager
  engine.controls.receivers.push(manager)
  return { manager, deliveries }
}
