"""`wm-viz`: the world-model report (one self-contained HTML file) or the interactive page on localhost.

    wm-viz checkpoint=outputs/wm                                            # -> outputs/wm_viz/report.html
    wm-viz checkpoint=outputs/wm eval_json=outputs/wm_eval/metrics.json     # + sim-vs-model videos and scatter
    wm-viz checkpoint=outputs/wm serve=true port=8765 policy=servo          # interactive, Ctrl-C to stop
    wm-viz checkpoint=outputs/wm serve=true eval_json=outputs/wm_eval/metrics.json  # + ranking and videos

Episodes: `dataset_dirs`, else the checkpoint's validation episodes. The report opens from disk, no network.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from vla.cli.hydra_app import ConfigHint
from world_model.config import WMVizConfig, register_configs

logger = logging.getLogger("world_model.cli.viz")

HINT = (
    "Hint: wm-viz's keys are checkpoint, dataset_dirs, output, eval_json, horizon, num_rows, serve, host, port, policy, "
    "seed (world_model/config.py: WMVizConfig). Print the config with `wm-viz --cfg job`."
)
_hint = ConfigHint("wm-viz", "wm_viz", HINT)


def _episodes(cfg: WMVizConfig, model):
    from world_model.data import load_episodes
    from world_model.train import validation_episodes

    if cfg.dataset_dirs:
        return load_episodes(cfg.dataset_dirs, model.cameras, model.config.image_size, max_episodes=32,
                             state_features=list(model.feature_dims))
    eps = validation_episodes(cfg.checkpoint, model.cameras, model.config.image_size, list(model.feature_dims))
    if not eps:
        raise ValueError("the checkpoint's validation split is empty; pass dataset_dirs=[...]")
    return eps


def run_viz(cfg: WMVizConfig):
    from world_model.model import WorldModel
    from world_model.results_io import load_results

    model = WorldModel.load(cfg.checkpoint)
    episodes = _episodes(cfg, model)
    results = load_results(cfg.eval_json) if cfg.eval_json else None
    if cfg.serve:
        from vla.policy import make_policy
        from world_model.policies import policy_context
        from world_model.viz.server import Session, serve

        name, policy = make_policy(cfg.policy, policy_context(cfg.seed)) if cfg.policy else ("", None)
        server = serve(Session(model, episodes, policy, name, eval_results=results), cfg.host, cfg.port)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return None
    from world_model.viz.report import build_report

    return build_report(model, episodes, cfg.output, eval_results=results, horizon=cfg.horizon, num_rows=cfg.num_rows,
                        seed=cfg.seed, checkpoint=cfg.checkpoint)


@hydra.main(version_base=None, config_path="pkg://configs", config_name="wm_viz")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from world_model.data import DataMismatchError

    try:
        out = run_viz(OmegaConf.to_object(cfg))
    except (ValueError, FileNotFoundError, DataMismatchError, OSError) as e:
        logger.error("%s: %s", type(e).__name__, e)
        sys.exit(1)
    if out is not None:
        logger.info("report: %s (open it in a browser; it needs no network)", out)


def main() -> None:
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
