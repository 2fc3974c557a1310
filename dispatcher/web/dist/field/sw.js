// The phone app's service worker: keeps the app shell so that the app
// opens without a network. Shell files are answered from the cache at once
// and refreshed from the network behind it (a new version shows on the next
// start); the API calls (POST, grpc-web) are never touched.
const SHELL_VERSION = "4f70b2c1317c9679";
const CACHE = `pingji-field-${SHELL_VERSION}`;
const SHELL = [
  "/field/",
  "/field/app.js",
  "/field/app.css",
  "/field/manifest.webmanifest",
  "/field/icon-192.png",
  "/field/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name.startsWith("pingji-field-") && name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/field/")) {
    return;
  }
  // The page itself, whatever its query or fragment, is the shell's page.
  const key = request.mode === "navigate" ? "/field/" : url.pathname;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(request)
        .then((response) => {
          if (response.ok) {
            cache.put(key, response.clone());
          }
          return response;
        })
        .catch(() => cached ?? Response.error());
      if (cached) {
        event.waitUntil(fresh.catch(() => undefined));
        return cached;
      }
      return fresh;
    }),
  );
});
