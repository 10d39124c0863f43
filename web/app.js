// app.js — the page's entry module. This first version only asks the server
// for the session state and says whether it is open; the page helper replaces it.
const status = document.getElementById('status');

async function start() {
  const response = await fetch('/api/session', { credentials: 'same-origin' });
  const session = await response.json();
  status.textContent = session.logged_in
    ? 'faceq is running.'
    : 'faceq is running; this server needs its API key.';
}

start().catch((error) => {
  status.textContent = `Cannot reach the server: ${error.message}`;
});
