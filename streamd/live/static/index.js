// The camera list: numbers from /v1/cameras every 2 s, each picture reloaded a second after it loads.
const grid = document.getElementById('grid');
const previous = {};
function text(node, value) { if (node.textContent !== value) node.textContent = value; }
function card(id) {
  let el = document.getElementById('cam-' + id);
  if (el) return el;
  el = document.createElement('div'); el.className = 'card'; el.id = 'cam-' + id;
  el.innerHTML = '<a><img alt=""></a><div class="info"><h2></h2><div class="state"></div>' +
    '<div class="muted stats"></div><div class="counts"></div><div class="error"></div></div>';
  el.querySelector('a').href = 'cameras/' + encodeURIComponent(id);
  el.querySelector('h2').textContent = id;
  const img = el.querySelector('img');
  img.dataset.id = id;
  img.onload = img.onerror = () => setTimeout(() => refreshPicture(img), 1000);
  refreshPicture(img);
  grid.appendChild(el);
  return el;
}
function refreshPicture(img) {
  img.src = 'v1/cameras/' + encodeURIComponent(img.dataset.id) + '/latest.jpg?t=' + Date.now();
}
async function refresh() {
  try {
    const status = await (await fetch('v1/cameras', {cache: 'no-store'})).json();
    const now = performance.now();
    for (const cam of status.cameras) {
      const el = card(cam.id);
      const state = el.querySelector('.state');
      state.className = 'state ' + cam.state; text(state, cam.state);
      const before = previous[cam.id];
      const fps = before ? (cam.processed - before.processed) / ((now - before.t) / 1000) : null;
      previous[cam.id] = {processed: cam.processed, t: now};
      if (cam.state !== 'invalid') {
        text(el.querySelector('.stats'), (fps === null ? '' : fps.toFixed(1) + ' fps processed, ') +
          cam.dropped + ' dropped, ' + cam.processed + ' processed');
      }
      const counts = [];
      for (const [name, line] of Object.entries(cam.lines || {})) counts.push(name + ': in ' + line.in + ' out ' + line.out);
      for (const [name, zone] of Object.entries(cam.zones || {})) counts.push(name + ': ' + zone.occupancy + ' inside');
      text(el.querySelector('.counts'), counts.join(' \u00b7 '));
      text(el.querySelector('.error'), cam.processing_error || cam.last_error || '');
    }
  } catch (e) { /* the daemon restarts: try again */ }
  setTimeout(refresh, 2000);
}
refresh();
