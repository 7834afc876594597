#!/bin/bash
# One device call: MoE/MLA layers and micro-benchmarks, then whole-stack decode steps.
D=$(dirname "$0")
L=$OUT/logs; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,memory.used --format=csv > $L/nvidia-smi.txt
PYTHONUNBUFFERED=1 timeout 325 python3 $D/moe_mla.py --budget-s 290 --precompile-s 100 --workers 12 --out $L > $L/moe-mla-stdout.txt 2>&1
echo "moe_mla rc $?" >> $L/nvidia-smi.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,memory.used --format=csv >> $L/nvidia-smi.txt
PYTHONUNBUFFERED=1 timeout 245 python3 $D/decode_stacks.py --budget-s 212 --precompile-s 75 --workers 12 --out $L > $L/decode-stacks-stdout.txt 2>&1
echo "decode_stacks rc $?" >> $L/nvidia-smi.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,memory.used --format=csv >> $L/nvidia-smi.txt
for f in moe.jsonl mla.jsonl decode-mixed.jsonl decode-moe.jsonl; do [ -f $L/$f ] && mv $L/$f $OUT/; done
tar -C $L -czf $OUT/logs.tar.gz .
tail -5 $L/moe-mla-log.txt; tail -5 $L/decode-stacks-log.txt; cat $L/nvidia-smi.txt
