// The actions a person took, kept in IndexedDB until the dispatcher has
// answered them: taken offline, they wait here and are sent when the
// network is back. Each keeps the idempotency key made when the person
// acted, so that one sent twice (the answer was lost) is applied once.

export type ActionKind =
  | "status"
  | "accept"
  | "decline"
  | "arrived"
  | "complete"
  | "checkIn"
  | "report"
  | "reply"
  | "read"
  | "safetyCheckIn"
  | "help";

export interface Action {
  /** The idempotency key, made when the person acted; the record's key. */
  key: string;
  kind: ActionKind;
  /** When the person acted (ms since the epoch): the queue's order. */
  at: number;
  /** The request's fields, other than session_id and idempotency_key. */
  fields: Record<string, unknown>;
  /** Photos not uploaded yet. */
  photos: Blob[];
  /** Refs of the photos uploaded so far. */
  photoRefs: string[];
}

const DATABASE = "pingji-field";
const STORE = "outbox";
/** What the service worker needs to answer a notification: who, with which token, in which session. */
const KEYS = "keys";

let opened: Promise<IDBDatabase> | null = null;

function database(): Promise<IDBDatabase> {
  // Version 2 added the worker's keys beside the outbox.
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 2);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(STORE)) {
        db.createObjectStore(STORE, { keyPath: "key" });
      }
      if (!db.objectStoreNames.contains(KEYS)) {
        db.createObjectStore(KEYS);
      }
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>, name = STORE): Promise<T> {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(name, mode);
    const request = work(transaction.objectStore(name));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error);
  });
}

/** The person's credentials and open session, for the service worker (never in a URL or a log). */
export interface WorkerKeys {
  agentId: string;
  token: string;
  /** The open session's id as a decimal string; "" when none is open. */
  sessionId: string;
}

export async function saveKeys(keys: WorkerKeys): Promise<void> {
  await run("readwrite", (store) => store.put(keys, "credentials"), KEYS);
}

export async function keys(): Promise<WorkerKeys | undefined> {
  return run<WorkerKeys | undefined>("readonly", (store) => store.get("credentials"), KEYS);
}

export async function clearKeys(): Promise<void> {
  await run("readwrite", (store) => store.delete("credentials"), KEYS);
}

/** A new idempotency key: 128 random bits (works outside secure contexts too). */
export function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function put(action: Action): Promise<void> {
  await run("readwrite", (store) => store.put(action));
}

export async function remove(key: string): Promise<void> {
  await run("readwrite", (store) => store.delete(key));
}

/** Every waiting action, oldest first. */
export async function waiting(): Promise<Action[]> {
  const all = await run<Action[]>("readonly", (store) => store.getAll());
  return all.sort((a, b) => a.at - b.at);
}

export async function clear(): Promise<void> {
  await run("readwrite", (store) => store.clear());
}
