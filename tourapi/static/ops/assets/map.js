// The venues' geofences drawn on an SVG, coloured by crowd level. No tile server is needed: the
// projection (spherical Web Mercator, which at city scale is an equirectangular projection scaled by
// cos(latitude)) is fitted to the geofences' bounds. With a tile URL, XYZ tiles are drawn underneath;
// they line up because both use the same projection.

const SVG_NS = 'http://www.w3.org/2000/svg';
const EARTH_M = 40075016.686; // equatorial circumference
const PAD = 28;
const MIN_MARKER_PX = 16; // venues smaller than this on screen also get a round marker
const MAX_TILES = 120;

const mercX = (lon) => (lon + 180) / 360;
const mercY = (lat) => {
  const s = Math.sin((lat * Math.PI) / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
};

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

// Outer and inner rings of a GeoJSON Polygon or MultiPolygon, as lists of [lon, lat].
export function ringsOf(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return geometry.coordinates;
  if (geometry.type === 'MultiPolygon') return geometry.coordinates.flat();
  return [];
}

export class VenueMap {
  constructor(svg, { tileUrl = null, onSelect = () => {}, label = (id) => id, levelText = (l) => l,
                     scaleText = (n) => `${n} m` } = {}) {
    this.svg = svg;
    this.tileUrl = tileUrl;
    this.onSelect = onSelect;
    this.label = label;
    this.levelText = levelText;
    this.scaleText = scaleText;
    this.venues = new Map(); // id -> {id, rings, area, state, nodes}
    this.selected = null;
    this.zoom = 1; // 1 = every venue in view
    this.centre = null; // world point at the middle of the view; null = the venues' centre
    this.build();
    this.bindPanZoom();
    if (window.ResizeObserver) {
      this.observer = new ResizeObserver(() => this.layout());
      this.observer.observe(svg);
    }
  }

  build() {
    this.svg.replaceChildren();
    const defs = el('defs', {}, this.svg);
    const hatch = el('pattern', { id: 'hatch-crowded', width: 6, height: 6, patternUnits: 'userSpaceOnUse',
                                  patternTransform: 'rotate(45)' }, defs);
    el('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' }, hatch);
    const cross = el('pattern', { id: 'hatch-full', width: 6, height: 6, patternUnits: 'userSpaceOnUse',
                                  patternTransform: 'rotate(45)' }, defs);
    el('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' }, cross);
    el('line', { x1: 0, y1: 0, x2: 6, y2: 0, class: 'hatch-line' }, cross);
    this.tileLayer = el('g', { class: 'tiles' }, this.svg);
    this.fenceLayer = el('g', { class: 'fences' }, this.svg);
    this.labelLayer = el('g', { class: 'labels' }, this.svg);
    this.decor = el('g', { class: 'decor' }, this.svg);
  }

  // venues: [{id, geometry}] (GeoJSON geofences, WGS-84)
  setVenues(venues) {
    const previous = this.venues;
    this.venues = new Map();
    for (const { id, geometry } of venues) {
      const rings = ringsOf(geometry).map((ring) => ring.map(([lon, lat]) => [mercX(lon), mercY(lat)]));
      if (!rings.length) continue;
      const old = previous.get(id);
      this.venues.set(id, { id, rings, area: areaOf(rings[0]), state: old ? old.state : {}, nodes: null });
    }
    this.fenceLayer.replaceChildren();
    const ordered = [...this.venues.values()].sort((a, b) => b.area - a.area); // small venues on top
    for (const venue of ordered) {
      const group = el('g', { class: 'venue', 'data-poi': venue.id, tabindex: '0', role: 'button' }, this.fenceLayer);
      const title = el('title', {}, group);
      const fence = el('path', { class: 'fence' }, group);
      const hatch = el('path', { class: 'hatch' }, group);
      const marker = el('circle', { class: 'marker', r: 6 }, group);
      group.addEventListener('click', () => {
        if (!this.dragged) this.onSelect(venue.id);
      });
      group.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') this.onSelect(venue.id);
      });
      venue.nodes = { group, title, fence, hatch, marker, label: null };
      this.paint(venue);
    }
    this.layout();
  }

  update(id, state) {
    const venue = this.venues.get(id);
    if (!venue) return;
    venue.state = { ...venue.state, ...state };
    this.paint(venue);
    this.placeLabel(venue);
  }

  select(id) {
    this.selected = id;
    for (const venue of this.venues.values()) {
      venue.nodes.group.classList.toggle('selected', venue.id === id);
      this.placeLabel(venue);
    }
  }

  refreshTexts() {
    for (const venue of this.venues.values()) {
      this.paint(venue);
      this.placeLabel(venue);
    }
    this.drawDecor();
  }

  paint(venue) {
    const { level = 'comfortable', occupancy = 0, capacity = 0 } = venue.state;
    const { group, title } = venue.nodes;
    group.setAttribute('class', `venue level-${level}${venue.id === this.selected ? ' selected' : ''}`);
    group.setAttribute('data-level', level);
    title.textContent = `${this.label(venue.id)} · ${this.levelText(level)} · ${occupancy} / ${capacity}`;
    group.setAttribute('aria-label', title.textContent);
  }

  layout() {
    const width = this.svg.clientWidth;
    const height = this.svg.clientHeight;
    if (!width || !height || !this.venues.size) return;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const venue of this.venues.values()) {
      for (const [x, y] of venue.rings[0]) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
    const fit = Math.min((width - 2 * PAD) / Math.max(x1 - x0, 1e-9), (height - 2 * PAD) / Math.max(y1 - y0, 1e-9));
    const k = fit * this.zoom;
    const [cx, cy] = this.centre || [(x0 + x1) / 2, (y0 + y1) / 2];
    // screen = (world - world0) * k + off, with the view's centre in the middle of the map
    const offX = width / 2;
    const offY = height / 2;
    this.view = { k, x0: cx, y0: cy, offX, offY, width, height, bounds: [x0, y0, x1, y1] };
    const px = ([x, y]) => [(x - cx) * k + offX, (y - cy) * k + offY];
    for (const venue of this.venues.values()) {
      const d = venue.rings
        .map((ring) => ring.map((p, i) => `${i ? 'L' : 'M'}${px(p).map((v) => v.toFixed(1)).join(',')}`).join('') + 'Z')
        .join('');
      venue.nodes.fence.setAttribute('d', d);
      venue.nodes.hatch.setAttribute('d', d);
      const xs = venue.rings[0].map((p) => px(p)[0]);
      const ys = venue.rings[0].map((p) => px(p)[1]);
      const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
      const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
      const size = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
      venue.centre = [cx, cy];
      venue.screenSize = size;
      venue.nodes.marker.setAttribute('cx', cx.toFixed(1));
      venue.nodes.marker.setAttribute('cy', cy.toFixed(1));
      venue.nodes.marker.classList.toggle('hidden', size >= MIN_MARKER_PX);
      this.placeLabel(venue);
    }
    this.drawTiles();
    this.drawDecor();
  }

  placeLabel(venue) {
    if (!this.view || !venue.centre) return;
    const level = venue.state.level || 'comfortable';
    const show = level !== 'comfortable' || venue.id === this.selected;
    if (!show) {
      if (venue.nodes.label) venue.nodes.label.remove();
      venue.nodes.label = null;
      return;
    }
    if (!venue.nodes.label) venue.nodes.label = el('text', { class: 'map-label' }, this.labelLayer);
    const label = venue.nodes.label;
    const [cx, cy] = venue.centre;
    const right = cx < this.view.width * 0.62;
    label.setAttribute('x', (cx + (right ? 1 : -1) * (Math.max(venue.screenSize / 2, 6) + 5)).toFixed(1));
    label.setAttribute('y', (cy + 4).toFixed(1));
    label.setAttribute('text-anchor', right ? 'start' : 'end');
    label.setAttribute('class', `map-label level-${level}`);
    label.textContent = this.label(venue.id);
  }

  // ---- zoom and pan: wheel or buttons to zoom, drag to pan, double-click to show every venue ----

  zoomBy(factor, screenX = null, screenY = null) {
    if (!this.view) return;
    const { k, x0, y0, offX, offY, width, height } = this.view;
    const sx = screenX ?? width / 2;
    const sy = screenY ?? height / 2;
    const world = [(sx - offX) / k + x0, (sy - offY) / k + y0]; // stays under the cursor
    this.zoom = Math.max(1, Math.min(60, this.zoom * factor));
    const next = this.fitK() * this.zoom;
    this.centre = this.zoom === 1 ? null : [world[0] - (sx - offX) / next, world[1] - (sy - offY) / next];
    this.layout();
  }

  fitK() {
    const { width, height, bounds } = this.view;
    const [x0, y0, x1, y1] = bounds;
    return Math.min((width - 2 * PAD) / Math.max(x1 - x0, 1e-9), (height - 2 * PAD) / Math.max(y1 - y0, 1e-9));
  }

  resetZoom() {
    this.zoom = 1;
    this.centre = null;
    this.layout();
  }

  bindPanZoom() {
    const svg = this.svg;
    svg.addEventListener('wheel', (event) => {
      event.preventDefault();
      const box = svg.getBoundingClientRect();
      this.zoomBy(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener('pointerdown', (event) => {
      if (!this.view || event.button !== 0) return;
      drag = { x: event.clientX, y: event.clientY, moved: false, centre: [this.view.x0, this.view.y0] };
    });
    svg.addEventListener('pointermove', (event) => {
      if (!drag || !this.view) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) svg.setPointerCapture(event.pointerId);
      drag.moved = true;
      this.centre = [drag.centre[0] - dx / this.view.k, drag.centre[1] - dy / this.view.k];
      this.layout();
    });
    const end = (event) => {
      if (drag && drag.moved) {
        this.dragged = true; // a drag is not a click on the venue under the pointer
        setTimeout(() => { this.dragged = false; }, 0);
        if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
      }
      drag = null;
    };
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
    svg.addEventListener('dblclick', () => this.resetZoom());
  }

  drawTiles() {
    this.tileLayer.replaceChildren();
    if (!this.tileUrl || !this.view) return;
    const { k, x0, y0, offX, offY, width, height } = this.view;
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(k / 256))));
    const n = 2 ** z;
    const worldX = (sx) => (sx - offX) / k + x0;
    const worldY = (sy) => (sy - offY) / k + y0;
    const tx0 = Math.max(0, Math.floor(worldX(0) * n));
    const tx1 = Math.min(n - 1, Math.floor(worldX(width) * n));
    const ty0 = Math.max(0, Math.floor(worldY(0) * n));
    const ty1 = Math.min(n - 1, Math.floor(worldY(height) * n));
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) > MAX_TILES) return;
    const size = k / n;
    for (let tx = tx0; tx <= tx1; tx++) {
      for (let ty = ty0; ty <= ty1; ty++) {
        const href = this.tileUrl
          .replace('{z}', z).replace('{x}', tx).replace('{y}', ty)
          .replace('{s}', 'abc'[(tx + ty) % 3]);
        el('image', {
          href, x: ((tx / n - x0) * k + offX).toFixed(1), y: ((ty / n - y0) * k + offY).toFixed(1),
          width: (size + 0.5).toFixed(1), height: (size + 0.5).toFixed(1), preserveAspectRatio: 'none',
        }, this.tileLayer);
      }
    }
  }

  drawDecor() {
    this.decor.replaceChildren();
    if (!this.view) return;
    const { k, y0, height, width } = this.view;
    // Scale bar: metres per pixel at the latitude of the view's centre.
    const lat = (Math.atan(Math.sinh(Math.PI * (1 - 2 * y0))) * 180) / Math.PI;
    const metresPerPx = (EARTH_M * Math.cos((lat * Math.PI) / 180)) / k;
    const target = metresPerPx * width * 0.18;
    const steps = [50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000];
    const metres = steps.reduce((best, s) => (Math.abs(s - target) < Math.abs(best - target) ? s : best), steps[0]);
    const length = metres / metresPerPx;
    const y = height - 14;
    el('path', { class: 'scale-bar', d: `M14,${y - 6}V${y}H${(14 + length).toFixed(1)}V${y - 6}` }, this.decor);
    const text = el('text', { class: 'scale-text', x: 14, y: y - 10 }, this.decor);
    text.textContent = metres >= 1000 ? `${metres / 1000} km` : this.scaleText(metres);
    const north = el('g', { class: 'north', transform: `translate(${width - 22},26)` }, this.decor);
    el('path', { d: 'M0,-12L6,6L0,2L-6,6Z' }, north);
    const letter = el('text', { x: 0, y: 20, 'text-anchor': 'middle' }, north);
    letter.textContent = 'N';
  }
}

function areaOf(ring) {
  let sum = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    sum += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
  }
  return Math.abs(sum / 2);
}
