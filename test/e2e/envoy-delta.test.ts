import { describeEnvoy } from '../support/envoy.js';
import { envoySuite } from './envoy-suite.js';

describeEnvoy('real Envoy over Delta ADS', () => envoySuite('delta'), { timeout: 60_000 });
