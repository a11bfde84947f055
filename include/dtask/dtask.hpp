// Everything a dtask user includes: tasks, client, futures, delayed, progress, reports, LocalCluster.
#pragma once

#include <dtask/client.hpp>
#include <dtask/codec.hpp>
#include <dtask/local_cluster.hpp>
#include <dtask/progress.hpp>
#include <dtask/report.hpp>
#include <dtask/task.hpp>
#include <dtask/types.hpp>
#include <dtask/worker_context.hpp>
