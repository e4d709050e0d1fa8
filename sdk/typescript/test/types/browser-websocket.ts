// Type-checked by tsconfig.browser.json only (DOM types, no Node types):
// the platform's WebSocket fits what the browser entry takes.
import type { WebSocketConstructor } from "../../src/index.js";

export const platform: WebSocketConstructor = WebSocket;
