// bench/lib/flame.mjs — a flame graph (root at the bottom, width = samples) of folded stacks
// as a standalone SVG; each box's tooltip gives its frame, samples and share.

import { esc } from './format.mjs'

const WIDTH = 1600
const ROW = 16
const MIN_PX = 0.5

function tree(stacks) {
  const root = { name: 'all', count: 0, children: new Map() }
  for (const [stack, count] of stacks) {
    root.count += count
    let node = root
    for (const frame of stack.split(';')) {
      let child = node.children.get(frame)
      if (child === undefined) {
        child = { name: frame, count: 0, children: new Map() }
        node.children.set(frame, child)
      }
      child.count += count
      node = child
    }
  }
  return root
}

/** Warm colours for our own JS, yellow for node's JS, red for native code, blue for the kernel. */
function colour(name) {
  let hash = 0
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0
  const shade = hash % 40
  if (name.includes('[kernel')) return `rgb(${90 + shade},${130 + shade},220)`
  if (/ (dist|src|bench)\//.test(name)) return `rgb(240,${120 + shade * 2},40)`
  if (name.startsWith('JS:') || name.includes('node:')) return `rgb(230,${190 + shade},60)`
  return `rgb(220,${70 + shade},${60 + shade})`
}

function depthOf(node) {
  let depth = 0
  for (const child of node.children.values()) depth = Math.max(depth, depthOf(child))
  return depth + 1
}

export function flameGraph(stacks, title) {
  const root = tree(stacks)
  const depth = depthOf(root)
  const height = (depth + 3) * ROW
  const scale = WIDTH / Math.max(1, root.count)
  const boxes = []
  const draw = (node, x, level) => {
    const w = node.count * scale
    if (w < MIN_PX) return
    const y = height - (level + 1) * ROW
    const share = ((node.count / root.count) * 100).toFixed(2)
    const label = w > 40 ? esc(node.name.slice(0, Math.floor(w / 6.5))) : ''
    boxes.push(`<g><title>${esc(node.name)} — ${node.count} samples (${share}%)</title>` +
      `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${ROW - 1}" fill="${colour(node.name)}"/>` +
      (label ? `<text x="${(x + 3).toFixed(1)}" y="${y + 11}">${label}</text>` : '') + '</g>')
    let at = x
    for (const child of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      draw(child, at, level + 1)
      at += child.count * scale
    }
  }
  draw(root, 0, 0)
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="monospace" font-size="11">\n` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="4" y="14" font-size="13">${esc(title)}</text>\n${boxes.join('\n')}\n</svg>\n`
}
