/** @module Interface switchyard:handler/claims@1.0.0 **/
/**
 * The calling client's verified JWT claims as a JSON object (`{}` for a guest).
 */
export function claims(): string;
