// One camera: click a line (A, B) or a zone (corners) on the picture, get the YAML for the camera file.
const img = document.getElementById('live'), canvas = document.getElementById('draw');
const out = document.getElementById('yaml'), ctx = canvas.getContext('2d');
let mode = 'line', points = [];
function fit() { canvas.width = img.clientWidth; canvas.height = img.clientHeight; paint(); }
function paint() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!points.length) return;
  ctx.strokeStyle = '#ff2d55'; ctx.fillStyle = '#ff2d55'; ctx.lineWidth = 3; ctx.setLineDash([8, 5]);
  ctx.beginPath();
  points.forEach(([x, y], i) => { const px = x * canvas.width, py = y * canvas.height; i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
  if (mode === 'zone' && points.length > 2) ctx.closePath();
  ctx.stroke(); ctx.setLineDash([]);
  for (const [x, y] of points) { ctx.beginPath(); ctx.arc(x * canvas.width, y * canvas.height, 5, 0, 7); ctx.fill(); }
}
function yaml() {
  const name = document.getElementById('name').value.trim() || (mode === 'line' ? 'door' : 'lobby');
  const pts = '[' + points.map(([x, y]) => '[' + x.toFixed(3) + ', ' + y.toFixed(3) + ']').join(', ') + ']';
  if (mode === 'line') {
    out.textContent = points.length === 2 ? 'lines:\n  ' + name + ':\n    points: ' + pts + '   # A then B\n'
      : 'click ' + (2 - points.length) + ' more point(s): A, then B';
  } else {
    out.textContent = points.length >= 3 ? 'zones:\n  ' + name + ':\n    polygon: ' + pts + '\n'
      : 'click ' + (3 - points.length) + ' more corner(s), in order around the zone';
  }
}
canvas.addEventListener('click', (e) => {
  const r = canvas.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  const y = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
  if (mode === 'line' && points.length === 2) points = [];
  points.push([x, y]); paint(); yaml();
});
function setMode(m) { mode = m; points = []; document.getElementById('mode').textContent = m; paint(); yaml(); }
document.getElementById('line').onclick = () => setMode('line');
document.getElementById('zone').onclick = () => setMode('zone');
document.getElementById('undo').onclick = () => { points.pop(); paint(); yaml(); };
document.getElementById('copy').onclick = () => navigator.clipboard && navigator.clipboard.writeText(out.textContent);
document.getElementById('name').oninput = yaml;
img.onload = fit; window.addEventListener('resize', fit); setInterval(fit, 1000);
yaml();
