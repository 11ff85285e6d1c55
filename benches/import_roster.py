#!/usr/bin/env python3
"""A synthetic roster for the import benchmark (benches/import.sh): N households of 3 members
(head, spouse, child), every ID number valid and unique, spread over the grids PREFIX01..PREFIXnn
(by default 建新社区's four of the demo data set), at addresses the demo data does not use.

    python3 benches/import_roster.py 10000 [370103006012 [4]] > roster.csv
"""
import sys

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def id_number(birth, seq):
    first17 = f"370112{birth}{seq:03d}"  # 历城区: no demo resident has these
    return first17 + CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    prefix = sys.argv[2] if len(sys.argv) > 2 else "370103006012"
    grids = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    out = sys.stdout
    out.write("\ufeff网格编码,楼栋,单元,房号,户主姓名,联系电话,户备注,成员姓名,性别,出生日期,身份证号,成员电话,与户主关系,独居,残疾等级,慢性病,重病,低保,特困,备注\r\n")
    for i in range(n):
        grid = f"{prefix}{(i % grids) + 1:02d}"
        building, unit, room = f"导入{i // 60 + 1}号楼", f"{i // 12 % 5 + 1}单元", f"{i % 12 + 101}"
        year = 1940 + i % 50
        day = f"{year}{(i % 12) + 1:02d}{(i % 28) + 1:02d}"
        seq = (i // 1000) % 500 * 2  # even: female; +1 male
        head = f"户主{i}"
        phone = f"13{(i % 7) + 3}{i:08d}"
        members = [
            (head, "男", id_number(day, seq + 1), "户主"),
            (f"配偶{i}", "女", id_number(day, seq + 2), "配偶"),
            (f"子女{i}", "女", id_number(f"{year + 25}{day[4:]}", seq + 4), "子女"),
        ]
        for j, (name, gender, number, relation) in enumerate(members):
            household = [grid, building, unit, room, head, phone, ""] if j == 0 else [""] * 7
            row = household + [name, gender, "", number, "", relation, "否", "", "是" if i % 9 == 0 else "否", "否", "否", "否", ""]
            out.write(",".join(row) + "\r\n")


if __name__ == "__main__":
    main()
