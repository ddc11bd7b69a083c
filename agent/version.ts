/** The agent's version, sent at enrollment and in the inference service's server metadata. */
export const AGENT_VERSION = '0.1.0';
