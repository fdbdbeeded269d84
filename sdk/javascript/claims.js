// Interface `switchyard:handler/claims` (grant `capabilities = ["claims"]`).
import { claims as hostClaims } from 'switchyard:handler/claims@1.0.0';

/** The caller's verified JWT claims as JSON text (`{}` for a guest). */
export function claimsRaw() {
  return hostClaims();
}

/** The caller's verified JWT claims as an object (`{}` for a guest). */
export function claims() {
  return JSON.parse(hostClaims());
}
