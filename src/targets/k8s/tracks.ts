/** The names that tell a canary's and a shadow's objects from the stable's (deploy --canary, --shadow; status and abort read them). */

/** The label on the canary's and the shadow candidate's pods: canary or shadow. */
export const TRACK_LABEL = 'mlops.io/track'
/** <deployment>-canary: the canary's Deployment and its Service. */
export const CANARY_SUFFIX = '-canary'
/** <deployment>-shadow: the shadow candidate's Deployment. */
export const SHADOW_SUFFIX = '-shadow'
/** The canary Deployment's last step readings, as deploy printed them (status shows them). */
export const GATE_ANNOTATION = 'mlops.io/last-gate'
/** On a canary paused by deploy --pause: what mlops promote needs to go on (canary-state.ts). Absent while a deploy runs it. */
export const PLAN_ANNOTATION = 'mlops.io/canary-plan'
